"""Plotly figures for the dashboard: the map of the collection and the trustworthiness curve; the Inspector's
confusion chart, per-category bars and two models' per-category mAP against each other.

The map is one WebGL trace (Scattergl) for all images, coloured per category, so it stays responsive at
10,000+ points; the latest query and its neighbours are drawn as two small traces on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.express as px
import plotly.graph_objects as go

from cbir.storage.evaluations import ConfusionMatrix
from cbir.storage.projections import MapPoints

PALETTE = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
NO_CATEGORY = "#9e9e9e"


def category_colours(categories: Sequence[str | None]) -> dict[str | None, str]:
    """A stable colour per category (sorted names, palette cycled); images without one are grey."""
    names = sorted({c for c in categories if c is not None})
    colours: dict[str | None, str] = {name: PALETTE[n % len(PALETTE)] for n, name in enumerate(names)}
    colours[None] = NO_CATEGORY
    return colours


def map_figure(
    points: MapPoints,
    neighbours: Sequence[int] = (),
    query_xy: tuple[float, float] | None = None,
    height: int = 650,
) -> go.Figure:
    """All images (trace 0, selectable), then the query's neighbours and the query itself when given."""
    colours = category_colours(points.categories)
    fig = go.Figure(
        go.Scattergl(
            x=points.x,
            y=points.y,
            mode="markers",
            name="images",
            marker={"size": 5, "opacity": 0.75, "color": [colours[c] for c in points.categories]},
            customdata=points.ids,
            text=[f"{c or '(no category)'}<br>{p}" for c, p in zip(points.categories, points.paths, strict=True)],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    rows = [points.position[i] for i in neighbours if i in points.position]
    if rows:
        fig.add_trace(
            go.Scattergl(
                x=points.x[rows],
                y=points.y[rows],
                mode="markers",
                name="neighbours",
                marker={"size": 12, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}},
                hoverinfo="skip",
            )
        )
    if query_xy is not None:
        fig.add_trace(
            go.Scattergl(
                x=[query_xy[0]],
                y=[query_xy[1]],
                mode="markers",
                name="query",
                marker={"size": 18, "symbol": "star", "color": "red", "line": {"width": 1, "color": "black"}},
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        dragmode="select",
        showlegend=len(fig.data) > 1,
        legend={"orientation": "h"},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
    )
    return fig


def trustworthiness_figure(scores: dict[int, float], kept: int) -> go.Figure:
    """Trustworthiness against n_neighbors, the kept value marked (the seed's 'plot score versus k')."""
    ks = sorted(scores)
    fig = go.Figure(go.Scatter(x=ks, y=[scores[k] for k in ks], mode="lines+markers", name="trustworthiness"))
    if kept in scores:
        fig.add_trace(
            go.Scatter(x=[kept], y=[scores[kept]], mode="markers", name="kept", marker={"size": 14, "symbol": "star"})
        )
    fig.update_layout(
        height=300,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        xaxis_title="n_neighbors",
        yaxis_title="trustworthiness",
        showlegend=False,
    )
    return fig


CELL = 30  # px per confusion-chart cell; the figure is sized from it so the square markers tile the grid
OWN_COLOUR = "#d9d9d9"
A_WINS, B_WINS, TIE = "#d62728", "#1f77b4", "#9e9e9e"


def _cells(cells: list[tuple[str, str]]) -> dict[str, list[str]]:
    """x (column = B) and y (row = A) of cells, for a categorical grid."""
    return {"x": [b for _, b in cells], "y": [a for a, _ in cells]}


def confusion_figure(matrix: ConfusionMatrix, k: int, current: tuple[str, str] | None = None) -> go.Figure:
    """A category x category confusion chart drawn as square scatter markers, one per cell, not a go.Heatmap.

    Why: Streamlit (1.67) turns a click into a selection event only for traces plotly.js can select points of
    (scatter, bar, ...; its select-on-click needs the trace's selectPoints, which heatmaps lack) and, besides
    that, reports plain clicks only on sunburst/treemap/icicle points. A heatmap cell click never reaches the
    script; a marker click does. Trace 0: confusions (A -> B, colour = rate, customdata [A, B, neighbours]),
    trace 1: the diagonal (A's own share, grey, labelled), trace 2: a ring on the pair shown below.
    """
    names, size = matrix.categories, len(matrix.categories)
    pairs = [(p["category"], p["other"]) for p in matrix.pairs]
    fig = go.Figure(
        go.Scatter(
            **_cells(pairs),
            mode="markers",
            name="confusions",
            marker={
                "symbol": "square",
                "size": CELL - 2,
                "color": [p["rate"] for p in matrix.pairs],
                "colorscale": "YlOrRd",
                "cmin": 0,
                "line": {"width": 0.5, "color": "#bdbdbd"},
                "colorbar": {"title": {"text": "rate"}, "thickness": 12},
            },
            customdata=[[p["category"], p["other"], p["neighbours"]] for p in matrix.pairs],
            hovertemplate=f"%{{customdata[0]}} -> %{{customdata[1]}}<br>rate %{{marker.color:.3f}} of top-{k}"
            "<br>%{customdata[2]} neighbours<extra></extra>",
        )
    )
    own = [name for name in names if name in matrix.own]
    fig.add_trace(
        go.Scatter(
            **_cells([(name, name) for name in own]),
            mode="markers+text",
            name="own",
            marker={"symbol": "square", "size": CELL - 2, "color": OWN_COLOUR},
            text=[f"{matrix.own[name]:.2f}" for name in own],
            textfont={"size": 9, "color": "#424242"},
            customdata=[[name, name, matrix.own[name]] for name in own],
            hovertemplate=f"%{{customdata[0]}}: own share %{{customdata[2]:.3f}} of top-{k}<extra></extra>",
        )
    )
    if current is not None and current[0] in names and current[1] in names:
        fig.add_trace(
            go.Scatter(
                x=[current[1]],
                y=[current[0]],
                mode="markers",
                name="shown",
                marker={"symbol": "square-open", "size": CELL, "color": "black", "line": {"width": 2.5}},
                customdata=[[current[0], current[1], None]],
                hoverinfo="skip",
            )
        )
    axis = {"type": "category", "categoryorder": "array", "categoryarray": names, "showgrid": False}
    axis |= {"automargin": False, "zeroline": False, "ticks": ""}
    longest = max(len(name) for name in names)  # fixed margins (room for the labels), so cells stay CELL px
    margin = {"l": 20 + 7 * longest, "r": 90, "t": 20 + 5 * longest, "b": 10}
    fig.update_layout(
        width=size * CELL + margin["l"] + margin["r"],
        height=size * CELL + margin["t"] + margin["b"],
        margin=margin,
        showlegend=False,
        plot_bgcolor="white",
        xaxis=axis | {"range": [-0.5, size - 0.5], "side": "top", "tickangle": -45, "title": None},
        yaxis=axis | {"range": [size - 0.5, -0.5], "title": None},
    )
    return fig


def clicked_pair(points: Sequence[dict]) -> tuple[str, str] | None:
    """The (A, B) pair of the first clicked confusion cell (its customdata); the diagonal is no pair."""
    for point in points:
        data = point.get("customdata")
        if data and len(data) >= 2 and data[0] != data[1]:
            return str(data[0]), str(data[1])
    return None


def category_bars_figure(rows: Sequence[dict], key: str, label: str, height: int = 320) -> go.Figure:
    """One bar per category, lowest first, and the mean over categories (macro) as a dashed line."""
    ordered = sorted(rows, key=lambda r: (r[key], r["category"]))
    values = [r[key] for r in ordered]
    fig = go.Figure(
        go.Bar(
            x=[r["category"] for r in ordered],
            y=values,
            customdata=[r["queries"] for r in ordered],
            hovertemplate=f"%{{x}}<br>{label} %{{y:.3f}}<br>%{{customdata}} queries<extra></extra>",
        )
    )
    if values:
        fig.add_hline(y=sum(values) / len(values), line_dash="dash", line_color="black", annotation_text="macro")
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        yaxis={"title": label, "range": [0, 1]},
        xaxis={
            "showticklabels": len(ordered) <= 30,
            "categoryorder": "array",
            "categoryarray": [r["category"] for r in ordered],
        },
        showlegend=False,
    )
    return fig


def compare_figure(rows: Sequence[dict], model_a: str, model_b: str, height: int = 420) -> go.Figure:
    """Per-category mAP of model A (x) against B (y) with the diagonal: points above it are B's wins."""
    groups = (
        (f"B wins ({model_b})", B_WINS, [r for r in rows if r["map B"] > r["map A"]]),
        (f"A wins ({model_a})", A_WINS, [r for r in rows if r["map B"] < r["map A"]]),
        ("tie", TIE, [r for r in rows if r["map B"] == r["map A"]]),
    )
    top = max([1e-9] + [max(r["map A"], r["map B"]) for r in rows]) * 1.05
    fig = go.Figure(
        go.Scatter(x=[0, top], y=[0, top], mode="lines", name="A = B", line={"dash": "dash", "color": "#757575"})
    )
    for name, colour, group in groups:
        fig.add_trace(
            go.Scatter(
                x=[r["map A"] for r in group],
                y=[r["map B"] for r in group],
                mode="markers",
                name=f"{name}: {len(group)}",
                marker={"size": 9, "color": colour, "line": {"width": 0.5, "color": "white"}},
                text=[r["category"] for r in group],
                hovertemplate="%{text}<br>A %{x:.3f}, B %{y:.3f}<extra></extra>",
            )
        )
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        xaxis={"title": f"mAP, A: {model_a}", "range": [0, top]},
        yaxis={"title": f"mAP, B: {model_b}", "range": [0, top], "scaleanchor": "x"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
