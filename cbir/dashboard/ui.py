"""Streamlit building blocks shared by the dashboard's pages: the cached database pool and model, the
thumbnail grid, and the one-line error shown for anything a user can cause. Pages stay a layout of
widgets over these and the cbir API."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import streamlit as st
from PIL import Image, ImageDraw
from psycopg_pool import ConnectionPool, PoolTimeout

from cbir.analysis import projection
from cbir.config import settings
from cbir.dashboard import charts, map_marks
from cbir.embedders import Embedder, get_embedder
from cbir.errors import BadArgument, CbirError, DatabaseUnavailable, ModelNotFound, first_line
from cbir.retrieval import copies
from cbir.retrieval.search import Answer
from cbir.storage import collection, db, metadata, projections, suspects
from cbir.storage.models import list_models, resolve_model
from cbir.storage.neighbours import nearest
from cbir.storage.projections import MapPoints

ANSWER_KEY = "last_answer"  # session_state: the latest Search answer, highlighted on the Map


@st.cache_resource(show_spinner="Connecting to the database...")
def _pool(home: str, database_url: str | None) -> tuple[ConnectionPool, str]:
    """One pool per database for the whole server process; the key makes a changed CBIR_HOME a new pool."""
    url = database_url or db.database_url()
    return db.pool(url), url


def database() -> tuple[ConnectionPool, str]:
    s = settings()
    return _pool(str(s.home), s.database_url)


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection; a database that stops answering becomes DatabaseUnavailable (one line)."""
    pool, url = database()
    try:
        with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable(
            f"lost the connection to {db.describe_location()} ({first_line(exc)}); reload the page to retry"
        ) from None


@st.cache_resource(show_spinner="Loading the model (once per server)...")
def embedder(name: str) -> Embedder:
    """The model stays loaded across queries and sessions."""
    return get_embedder(name)


@st.cache_resource(show_spinner="Loading the map...", max_entries=4)
def map_points(database_url: str, projection_id: int, version: str) -> MapPoints:
    """A stored map's points, read once per map and server and shared by every session (never modified).

    version: anything that changes when the points do (the map's time, the collection generation); cache_resource,
    not cache_data: no copy per rerun.
    """
    with connection() as conn:
        return projections.points(conn, projection_id)


def query_position(points: MapPoints, answer: Answer) -> tuple[float, float]:
    """Where the latest query sits on the map: its own point if stored, else at the weighted mean of its
    nearest stored images' points (instant: no UMAP on the request path)."""
    if answer.image_id is not None and (row := int(points.rows([answer.image_id])[0])) >= 0:
        return float(points.x[row]), float(points.y[row])
    hits = answer.hits
    if answer.filtered or len(hits) < projection.PLACE_K:  # a category filter's hits are not its neighbours
        with connection() as conn:
            hits = nearest(conn, resolve_model(conn, answer.model), answer.vector, k=projection.PLACE_K)
    return projection.place_by_neighbours(points, hits)


@st.cache_resource(show_spinner="Reading every image's folder...", max_entries=2)
def top_folders(database_url: str, projection_id: int, version: str) -> tuple[np.ndarray, list[str]]:
    with connection() as conn:
        return projections.top_folders(conn, projection_id)


@st.cache_resource(show_spinner="Finding duplicate groups (an all-pairs scan)...", max_entries=2)
def duplicate_groups(database_url: str, projection_id: int, version: str) -> list[tuple[str, list[int]]]:
    """Near-duplicate groups (largest first) under the model copies are judged by, as (label, image ids)."""
    with connection() as conn:
        model = copies.model_for(conn, None)
        groups = copies.near_duplicates(conn, model)
    return [(f"{g.kind} group {n} ({model.name})", [m.id for m in g.members]) for n, g in enumerate(groups, 1)]


@st.cache_resource(show_spinner="Measuring every image's distance to the query...", max_entries=4)
def distances(
    database_url: str,
    projection_id: int,
    version: str,
    model: str,
    query_key: str,
    _vector: np.ndarray,
    _points: MapPoints,
) -> np.ndarray:
    """Every map image's distance to a query (named by `query_key`, a hash of its vector), in row order."""
    with connection() as conn:
        ids, found = projections.distances(conn, projection_id, resolve_model(conn, model), _vector)
    values = np.full(len(_points), np.nan, dtype=np.float32)
    rows = _points.rows(ids)
    values[rows[rows >= 0]] = found[rows >= 0]
    return values


@st.cache_resource(show_spinner="Reading what the cameras recorded...", max_entries=4)
def photo_labels(database_url: str, projection_id: int, version: str, choice: str, _points: MapPoints) -> np.ndarray:
    """Each map image's year taken or camera (image_metadata; None where not recorded), in row order."""
    with connection() as conn:
        facts = metadata.photo_facts(conn, _points.ids.tolist())
    labels = np.full(len(_points), None, dtype=object)
    values = [f.camera if choice == "camera" else f.year for f in facts.values()]
    rows = _points.rows(list(facts))
    labels[rows[rows >= 0]] = [None if v is None else str(v) for v, r in zip(values, rows, strict=True) if r >= 0]
    return labels


@st.cache_resource(show_spinner="Searching categories and paths...", max_entries=8)
def matches(database_url: str, projection_id: int, version: str, text: str) -> np.ndarray:
    """Ids of the map's images whose category or a path contains `text` (ignoring case)."""
    with connection() as conn:
        return projections.matching(conn, projection_id, text)


@st.cache_resource(max_entries=16)
def map_layers(
    key: tuple, _points: MapPoints, _colouring: map_marks.Colouring, view: tuple | None
) -> list[map_marks.Layer]:
    """The map's traces, computed once per map, colouring (named by `key`) and view for every session."""
    rows = None if view is None else in_view(_points, view)
    return map_marks.layers(_points, _colouring, rows)


@st.cache_resource(show_spinner="Reading the stored suspect scores...", max_entries=4)
def suspect_values(database_url: str, run_id: int, column: str, _points: MapPoints) -> np.ndarray:
    """Each map image's score, uniqueness or representativeness in a stored suspects run (NaN: not scored)."""
    with connection() as conn:
        found = suspects.scores_by_image(conn, run_id, column)
    values = np.full(len(_points), np.nan, dtype=np.float32)
    rows = _points.rows(list(found))
    values[rows[rows >= 0]] = np.array(list(found.values()), dtype=np.float32)[rows >= 0]
    return values


# "Colour by" choices read from the model's latest `cbir suspects` run: (column, colour bar title)
SUSPECT_COLOURS = {
    "suspect score": ("score", "suspect score"),
    "uniqueness": ("uniqueness", "uniqueness"),
    "representativeness": ("representativeness", "representativeness"),
}
COLOUR_BY = (
    "category",
    "top folder",
    "duplicate group",
    "year taken",
    "camera",
    *SUSPECT_COLOURS,
    "distance to the latest query",
)
DUPLICATE_LIMIT = 20_000  # colour by duplicate group scans all pairs (cbir.retrieval.copies): up to this many images
DUPLICATE_GROUPS_SHOWN = 20


def map_colouring(
    choice: str, projection_id: int, version: str, points: MapPoints, answer: Answer | None, model: str | None = None
) -> tuple[map_marks.Colouring, tuple[str, float, float] | None]:
    """The Colouring a "Colour by" choice means (and a colour scale for distances and suspect scores)."""
    url = database()[1]
    if choice == "top folder":
        ids, folders = top_folders(url, projection_id, version)
        labels = np.full(len(points), None, dtype=object)
        labels[points.rows(ids)] = folders
        return charts.by_labels("top folder", labels), None
    if choice == "duplicate group":
        if len(points) > DUPLICATE_LIMIT:
            raise BadArgument(f"colouring by duplicate group scans all pairs: up to {DUPLICATE_LIMIT:,} images")
        groups = duplicate_groups(url, projection_id, version)
        shown = groups[:DUPLICATE_GROUPS_SHOWN]
        if rest := [i for _, ids in groups[DUPLICATE_GROUPS_SHOWN:] for i in ids]:
            shown = [*shown, (f"{len(groups) - DUPLICATE_GROUPS_SHOWN} smaller groups", rest)]
        return charts.by_membership("duplicate group", points, shown, "not in a group"), None
    if choice in SUSPECT_COLOURS:
        return suspect_colouring(choice, model, points)
    if choice in ("year taken", "camera"):
        labels = photo_labels(url, projection_id, version, choice, points)
        return charts.by_labels(choice, labels, "(not recorded)"), None
    if choice == COLOUR_BY[-1] and answer is not None:
        key = hashlib.sha1(np.ascontiguousarray(answer.vector).tobytes()).hexdigest()
        values = distances(url, projection_id, version, answer.model, key, answer.vector, points)
        scale = ("distance to the query", float(np.nanmin(values)), float(np.nanpercentile(values, 99)))
        return charts.by_value("distance", values), scale
    return charts.by_category(points), None


def suspect_colouring(
    choice: str, model_name: str | None, points: MapPoints
) -> tuple[map_marks.Colouring, tuple[str, float, float]]:
    """Colour by a column of the map's model's latest suspects run; an error line when it has none."""
    column, title = SUSPECT_COLOURS[choice]
    with connection() as conn:
        model = resolve_model(conn, model_name)
        run = suspects.latest_run(conn, model)
    if run is None:
        raise BadArgument(f"no suspect scores for {model.name} yet (run cbir suspects --model {model.name})")
    values = suspect_values(database()[1], run.id, column, points)
    colouring = charts.by_value(f"{title} (run {run.id})", values)  # the title names the run: layers' cache key
    return colouring, (title, float(np.nanmin(values)), float(np.nanmax(values)))


def in_view(points: MapPoints, view: tuple[float, float, float, float]) -> np.ndarray:
    """Point rows inside (x0, x1, y0, y1)."""
    x0, x1, y0, y1 = view
    return np.flatnonzero((points.x >= x0) & (points.x <= x1) & (points.y >= y0) & (points.y <= y1))


REGION_WIDTH = 360  # px: the picture a region is dragged on
MIN_REGION = 8  # px on screen: a shorter drag is a click, not a box


def region_box(picture: Image.Image, key: str) -> tuple[int, int, int, int] | None:
    """Show the picture to drag a box on (streamlit-image-coordinates); the box in the picture's own pixels
    (left, top, right, bottom), drawn on the picture once chosen, or None before a box is dragged."""
    from streamlit_image_coordinates import streamlit_image_coordinates

    scale = picture.width / REGION_WIDTH
    shown = picture.resize((REGION_WIDTH, max(1, round(picture.height / scale))))
    drag = st.session_state.get(key)
    box = None
    if drag and "x2" in drag and min(abs(drag["x2"] - drag["x1"]), abs(drag["y2"] - drag["y1"])) >= MIN_REGION:
        factor = picture.width / drag["width"]  # the browser's displayed size -> picture pixels
        xs = sorted(min(max(v, 0), drag["width"]) * factor for v in (drag["x1"], drag["x2"]))
        ys = sorted(min(max(v, 0), drag["height"]) * factor for v in (drag["y1"], drag["y2"]))
        box = (round(xs[0]), round(ys[0]), round(xs[1]), round(ys[1]))
        ImageDraw.Draw(shown).rectangle(
            [round(v / scale) for v in (box[0], box[1], box[2], box[3])], outline="red", width=3
        )
    streamlit_image_coordinates(shown, key=key, click_and_drag=True, image_format="JPEG", jpeg_quality=85)
    return box


def crop_png(picture: Image.Image, box: tuple[int, int, int, int]) -> bytes:
    """A region (left, top, right, bottom in the picture's pixels) as PNG bytes: a query like an upload."""
    buffer = io.BytesIO()
    picture.crop(box).save(buffer, format="PNG")
    return buffer.getvalue()


def cell(value: Any) -> Any:
    """A SQL value as a table/CSV cell: vectors in pgvector's text form, binary data as its size."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, np.ndarray):
        return "[" + ",".join(f"{v:g}" for v in value.ravel().tolist()) + "]"
    if isinstance(value, list | tuple | dict) or hasattr(value, "to_text"):
        return str(value)
    return value


def result_frame(columns: Sequence[str], rows: Sequence[tuple]) -> pd.DataFrame:
    """Rows of a SQL result as a DataFrame of displayable cells (duplicate column names kept apart)."""
    names = [name if columns.index(name) == n else f"{name}_{n}" for n, name in enumerate(columns)]
    return pd.DataFrame([[cell(v) for v in row] for row in rows], columns=names)


def show_error(exc: CbirError) -> None:
    """A user error as one line (app.py catches every CbirError a page raises and shows it so)."""
    st.error(str(exc), icon=":material/error:")


def models(conn: psycopg.Connection) -> tuple[list[str], str | None]:
    """Stored model names, and the one a search uses when none is picked (as `cbir search`), else the first."""
    names = [m.name for m in list_models(conn)]
    try:
        return names, resolve_model(conn, None).name
    except ModelNotFound:
        return names, names[0] if names else None


def pick_model(models: list[str], default: str | None) -> str:
    """The Model box of Search and Map: shown only when there is a choice, starting on the one a search uses."""
    return st.selectbox("Model", models, index=models.index(default)) if len(models) > 1 else models[0]


def thumbnail_grid(
    conn: psycopg.Connection, image_ids: Sequence[int], captions: dict[int, str], columns: int = 5
) -> None:
    """Thumbnails (from the database) in rows of `columns`, each with its caption."""
    thumbs = collection.thumbnails(conn, image_ids)
    cols = st.columns(columns)
    for n, image_id in enumerate(image_ids):
        with cols[n % columns]:
            if image_id in thumbs:
                st.image(thumbs[image_id], width="stretch")
            st.caption(captions.get(image_id, str(image_id)))
