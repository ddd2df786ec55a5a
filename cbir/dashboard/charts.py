"""Plotly figures for the dashboard: the map of the collection and the trustworthiness curve; the Search page's
distances by rank; the Inspector's confusion chart, per-category bars and two models' per-category mAP against
each other.

The map draws one WebGL trace (Scattergl) per colour group, so Plotly's own legend lists every category with
its count and hides (click) or isolates (double-click) it in the browser, with no round trip. A trace carries
only float32 coordinates (binary in the figure JSON), no per-point text: hover names the group, and what an
image is comes on demand, by selecting it. Past MAX_MARKS images a mark is every image of one group in one
cell of a grid over the view (its position the members' mean, its opacity their number), so the browser
draws a bounded number of marks at 100k or 1M images; a selection is expanded back to the member images on
the server, and "zoom to the selection" redraws a smaller view with finer cells, down to single images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from cbir.storage.evaluations import ConfusionMatrix
from cbir.storage.neighbours import Hit
from cbir.storage.projections import MapPoints

PALETTE = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
NO_CATEGORY = "#9e9e9e"
HIGHLIGHT = "#ffd600"
# Marks the browser is sent at most: chosen with benchmarks/dashboard.py (README, "Dashboard timings").
MAX_MARKS = 30_000
GRIDS = (1024, 512, 384, 256, 192, 128, 96, 64, 48, 32, 24, 16)  # cells per side tried, finest first
HEIGHT = 650


@dataclass
class Colouring:
    """What the map's colours mean: a group per image (the legend's entries), or a value per image (a scale)."""

    title: str
    groups: np.ndarray  # per point row: index into names
    names: list[str]
    colours: list[str]
    values: np.ndarray | None = None  # continuous colour per row (one group then), e.g. distance to the query


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


@dataclass
class Layer:
    """One trace of the map: its marks, and which images (point rows) each mark stands for.

    A mark is one image, or (past MAX_MARKS) all images of the group in one grid cell.
    """

    name: str
    colour: str
    x: np.ndarray  # float32, per mark
    y: np.ndarray
    members: np.ndarray  # point rows, mark by mark
    starts: np.ndarray  # mark j is members[starts[j]:starts[j + 1]]
    values: np.ndarray | None = None  # per mark: the smallest value of its members (continuous colouring)
    highlight: bool = False

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.starts)

    @property
    def images(self) -> int:
        return len(self.members)

    @property
    def single(self) -> bool:
        """Every mark is one image."""
        return len(self.members) == len(self.x)

    def rows(self, marks: Sequence[int] | np.ndarray) -> np.ndarray:
        """The point rows behind some marks."""
        marks = np.asarray(marks, dtype=np.int64)
        if not len(marks):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.members[self.starts[m] : self.starts[m + 1]] for m in marks])


def cells(points: MapPoints, rows: np.ndarray, grid: int) -> np.ndarray:
    """The grid cell (row-major) of each point row, the grid spanning those rows' extent."""
    x, y = points.x[rows], points.y[rows]
    span = max(float(x.max() - x.min()), float(y.max() - y.min()), 1e-9)
    cx = np.minimum(((x - x.min()) / span * grid).astype(np.int64), grid - 1)
    cy = np.minimum(((y - y.min()) / span * grid).astype(np.int64), grid - 1)
    return cy * grid + cx


def mark_keys(points: MapPoints, rows: np.ndarray, groups: np.ndarray, budget: int) -> np.ndarray:
    """A key per row, equal for rows drawn as one mark: the row itself when few enough, else (group, cell)
    on the finest grid that keeps the marks within `budget`."""
    if len(rows) <= budget:
        return groups * (len(points) + 1) + rows
    for grid in GRIDS:
        keys = groups * (grid * grid) + cells(points, rows, grid)
        if len(np.unique(keys)) <= budget or grid == GRIDS[-1]:
            return keys
    raise AssertionError("unreachable")


def layers(
    points: MapPoints, colouring: Colouring, rows: np.ndarray | None = None, budget: int = MAX_MARKS
) -> list[Layer]:
    """The map's traces, one per group that has images among `rows` (default: every point), in group order."""
    rows = np.arange(len(points)) if rows is None else np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return []
    groups = colouring.groups[rows]
    keys, inverse = np.unique(mark_keys(points, rows, groups, budget), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = rows[order]
    counts = np.bincount(inverse, minlength=len(keys))
    starts = np.concatenate([[0], np.cumsum(counts)])
    x = (np.add.reduceat(points.x[members].astype(np.float64), starts[:-1]) / counts).astype(np.float32)
    y = (np.add.reduceat(points.y[members].astype(np.float64), starts[:-1]) / counts).astype(np.float32)
    values = None
    if colouring.values is not None:
        values = np.minimum.reduceat(colouring.values[members], starts[:-1]).astype(np.float32)
    mark_group = groups[order][starts[:-1]]
    bounds = np.searchsorted(mark_group, np.arange(len(colouring.names) + 1))  # keys sort by group first
    result = []
    for g, name in enumerate(colouring.names):
        a, b = bounds[g], bounds[g + 1]
        if a == b:
            continue
        result.append(
            Layer(
                name=name,
                colour=colouring.colours[g],
                x=x[a:b],
                y=y[a:b],
                members=members[starts[a] : starts[b]],
                starts=starts[a : b + 1] - starts[a],
                values=None if values is None else values[a:b],
            )
        )
    return result


def highlight_layer(points: MapPoints, rows: np.ndarray, label: str, budget: int = MAX_MARKS) -> Layer | None:
    """The images a search box matched, as one trace drawn over the others (None when nothing matched)."""
    if not len(rows):
        return None
    colouring = Colouring("match", np.zeros(len(points), dtype=np.int64), [label], [HIGHLIGHT])
    (layer,) = layers(points, colouring, rows, budget)
    layer.highlight = True
    return layer


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


def bounds(x: np.ndarray, y: np.ndarray, pad: float = 0.05) -> tuple[float, float, float, float]:
    """A view (x0, x1, y0, y1) around some points, padded so the outermost marks are not cut."""
    x0, x1, y0, y1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    margin = pad * max(x1 - x0, y1 - y0, 1e-6)
    return x0 - margin, x1 + margin, y0 - margin, y1 + margin


def selected_rows(shown: Sequence[Layer], points: Sequence[dict]) -> np.ndarray:
    """The point rows behind a Plotly selection (marks of the layers; neighbours and query are not images)."""
    marks: dict[int, list[int]] = {}
    for point in points:
        curve = point.get("curve_number", 0)
        if curve < len(shown) and point.get("point_index") is not None:
            marks.setdefault(curve, []).append(int(point["point_index"]))
    if not marks:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([shown[c].rows(m) for c, m in marks.items()]))


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
