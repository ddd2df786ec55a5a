"""The Map's marks, without Plotly: what the colours mean, and which images each drawn mark stands for.

A Colouring gives each image a group (a legend entry) or a value (a colour scale). `layers` turns it into one
Layer per group: a mark per image, or past MAX_MARKS every image of the group in one cell of a grid over the
view (its position the members' mean), so the browser draws a bounded number of marks at 100k or 1M images.
`selected_rows` expands a browser selection back to the member images; `bounds` is the view around some points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cbir.storage.projections import MapPoints

HIGHLIGHT = "#ffd600"
# Marks the browser is sent at most: chosen with benchmarks/dashboard.py (README, "Dashboard timings").
MAX_MARKS = 30_000
GRIDS = (1024, 512, 384, 256, 192, 128, 96, 64, 48, 32, 24, 16)  # cells per side tried, finest first


@dataclass
class Colouring:
    """What the map's colours mean: a group per image (the legend's entries), or a value per image (a scale)."""

    title: str
    groups: np.ndarray  # per point row: index into names
    names: list[str]
    colours: list[str]
    values: np.ndarray | None = None  # continuous colour per row (one group then), e.g. distance to the query


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
