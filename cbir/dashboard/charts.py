"""Plotly figures for the dashboard: the map of the collection and the trustworthiness curve; the Search page's
distances by rank; the Inspector's confusion chart, per-category bars and two models' per-category mAP against
each other; and the colourings (`by_*`) the Map offers, with their palette.

The map draws one WebGL trace (Scattergl) per Layer of `cbir.dashboard.map_marks`, so Plotly's own legend lists
every group with its count and hides (click) or isolates (double-click) it in the browser, with no round trip. A
trace carries only float32 coordinates (binary in the figure JSON), no per-point text: hover names the group, and
what an image is comes on demand, by selecting it; a mark's opacity shows how many images it stands for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from cbir.dashboard.map_marks import Colouring, Layer
from cbir.storage.evaluations import ConfusionMatrix
from cbir.storage.neighbours import Hit
from cbir.storage.projections import MapPoints

PALETTE = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
NO_CATEGORY = "#9e9e9e"
HEIGHT = 650


def _palette(n: int) -> list[str]:
    return [PALETTE[k % len(PALETTE)] for k in range(n)]


def by_labels(title: str, labels: Sequence[str | None] | np.ndarray, none: str = "(none)") -> Colouring:
    """One group per distinct label (sorted, a stable colour each); rows without a label last, in grey."""
    distinct, groups = np.unique(
        np.array([none if v is None else v for v in labels], dtype=object), return_inverse=True
    )
    names = [str(u) for u in distinct]
    if none in names:  # keep "no label" last and grey
        last = names.index(none)
        order = [n for n in range(len(names)) if n != last] + [last]
        remap = np.argsort(order)
        return Colouring(title, remap[groups], [names[n] for n in order], _palette(len(names) - 1) + [NO_CATEGORY])
    return Colouring(title, groups, names, _palette(len(names)))


def by_category(points: MapPoints) -> Colouring:
    """Categories as stored (sorted names), images without one as "(no category)", grey, last."""
    names = list(points.names)
    groups = points.codes.astype(np.int64)
    colours = _palette(len(names))
    if (groups < 0).any():
        groups = np.where(groups < 0, len(names), groups)
        names.append("(no category)")
        colours.append(NO_CATEGORY)
    return Colouring("category", groups, names, colours)


def by_membership(title: str, points: MapPoints, groups: Sequence[tuple[str, Sequence[int]]], rest: str) -> Colouring:
    """Named groups of image ids (e.g. duplicate groups), a colour each; every other image in grey as `rest`."""
    codes = np.full(len(points), len(groups), dtype=np.int64)
    for n, (_, ids) in enumerate(groups):
        rows = points.rows(ids)
        codes[rows[rows >= 0]] = n
    names = [name for name, _ in groups] + [rest]
    return Colouring(title, codes, names, _palette(len(groups)) + [NO_CATEGORY])


def by_value(title: str, values: np.ndarray) -> Colouring:
    """One group coloured along a scale (the legend then has one entry, the scale a colour bar)."""
    return Colouring(title, np.zeros(len(values), dtype=np.int64), ["all images"], [NO_CATEGORY], values)


def _opacity(layer: Layer, dim: bool) -> float | np.ndarray:
    """Single images: one opacity; cells: more images, more opaque (log scale), so density shows."""
    factor = 0.2 if dim else 1.0
    if layer.single:
        return 0.75 * factor
    counts = layer.counts.astype(np.float32)
    share = np.log1p(counts) / np.log1p(max(float(counts.max()), 1.0))
    return np.clip(factor * (0.25 + 0.75 * share), 0.0, 1.0).astype(np.float32)


def _trace(layer: Layer, dim: bool, scale: tuple[str, float, float] | None) -> go.Scattergl:
    size = 5 if layer.single else 4
    marker: dict = {"size": size, "color": layer.colour, "opacity": _opacity(layer, dim)}
    if layer.highlight:
        marker |= {"size": size + 4, "line": {"width": 1, "color": "black"}}
    if scale is not None and layer.values is not None:
        title, low, high = scale
        marker |= {"color": layer.values, "colorscale": "Viridis_r", "cmin": low, "cmax": high}
        marker |= {"colorbar": {"title": {"text": title}, "thickness": 12}}
    label = f"{layer.name} · {layer.images:,}"
    extra = {
        "customdata": layer.counts.astype(np.int32),
        "hovertemplate": "%{customdata:,} images<extra>%{fullData.name}</extra>",
    }
    if layer.single:
        extra = {"hovertemplate": "<extra>%{fullData.name}</extra>"}
    return go.Scattergl(x=layer.x, y=layer.y, mode="markers", name=label, marker=marker, **extra)


def map_figure(
    shown: Sequence[Layer],
    neighbours_xy: np.ndarray | None = None,
    query_xy: tuple[float, float] | None = None,
    legend_title: str = "category",
    scale: tuple[str, float, float] | None = None,
    view: tuple[float, float, float, float] | None = None,
    height: int = HEIGHT,
) -> go.Figure:
    """The layers (selectable, in order; a highlight layer dims the rest), then the neighbours and the query.

    scale: (title, low, high) of a continuous colouring; view: (x0, x1, y0, y1) to show instead of everything.
    """
    dim = any(layer.highlight for layer in shown)
    fig = go.Figure([_trace(layer, dim and not layer.highlight, scale) for layer in shown])
    if neighbours_xy is not None and len(neighbours_xy):
        fig.add_trace(
            go.Scattergl(
                x=neighbours_xy[:, 0],
                y=neighbours_xy[:, 1],
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
    xaxis: dict = {"visible": False}
    yaxis: dict = {"visible": False, "scaleanchor": "x"}
    if view is not None:
        xaxis |= {"range": [view[0], view[1]]}
        yaxis |= {"range": [view[2], view[3]]}
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        dragmode="select",
        clickmode="event+select",
        uirevision="map",  # keeps what the analyst hid in the legend when the figure is redrawn
        showlegend=True,
        legend={
            "title": {"text": f"{legend_title} (images)"},
            "itemsizing": "constant",
            "font": {"size": 11},
            "tracegroupgap": 0,
        },
        xaxis=xaxis,
        yaxis=yaxis,
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


SAME, OTHER = "#2ca02c", "#7f7f7f"


def distances_figure(hits: Sequence[Hit], category: str | None, height: int = 220) -> go.Figure:
    """Each result's distance by rank: a jump shows where near copies, or the query's own kind, end. Results in
    the query's category (when it is known) are green, the others grey."""
    colour = [PALETTE[0]] * len(hits) if category is None else [SAME if h.category == category else OTHER for h in hits]
    fig = go.Figure(
        go.Scatter(
            x=list(range(1, len(hits) + 1)),
            y=[h.distance for h in hits],
            mode="lines+markers",
            line={"color": "#c7c7c7"},
            marker={"color": colour, "size": 9},
            customdata=[[h.category or "-", PurePath(h.path).name] for h in hits],
            hovertemplate="#%{x} · %{y:.4f}<br>%{customdata[0]} · %{customdata[1]}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        xaxis={"title": "rank", "dtick": 1 if len(hits) <= 20 else None},
        yaxis={"title": "distance", "rangemode": "tozero"},
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
