"""Plotly figures for the dashboard: the map of the collection and the trustworthiness curve.

The map is one WebGL trace (Scattergl) for all images, coloured per category, so it stays responsive at
10,000+ points; the latest query and its neighbours are drawn as two small traces on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.express as px
import plotly.graph_objects as go

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
