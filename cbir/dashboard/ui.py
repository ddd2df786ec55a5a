"""Streamlit building blocks shared by the dashboard's pages: the cached database pool and model, the
thumbnail grid, and the one-line error shown for anything a user can cause. Pages stay a layout of
widgets over these and the cbir API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import streamlit as st
from psycopg_pool import ConnectionPool, PoolTimeout

from cbir.analysis import projection
from cbir.config import settings
from cbir.embedders import Embedder, get_embedder
from cbir.errors import CbirError, DatabaseUnavailable, ModelNotFound
from cbir.retrieval.search import Answer
from cbir.storage import collection, db, projections
from cbir.storage.models import list_models, resolve_model
from cbir.storage.projections import MapPoints, Projection

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
            f"lost the connection to {db.describe_location()} ({db.first_line(exc)}); reload the page to retry"
        ) from None


@st.cache_resource(show_spinner="Loading the model (once per server)...")
def embedder(name: str) -> Embedder:
    """The model stays loaded across queries and sessions."""
    return get_embedder(name)


@st.cache_data(show_spinner="Loading the map...", max_entries=4)
def map_points(database_url: str, projection_id: int, created_at: str) -> MapPoints:
    """A stored map's points, read once per map (a refit has a new id and time, so a new cache entry)."""
    with connection() as conn:
        return projections.points(conn, projection_id)


@st.cache_resource(show_spinner="Loading the fitted UMAP (the first time takes a while)...", max_entries=2)
def reducer(database_url: str, projection_id: int, created_at: str) -> Any:
    with connection() as conn:
        return projections.load_reducer(conn, projection_id)


def query_position(p: Projection, points: MapPoints, answer: Answer) -> tuple[float, float]:
    """Where the latest query sits on the map: its own point if stored, else placed by the fitted UMAP."""
    if answer.image_id is not None and answer.image_id in points.position:
        row = points.position[answer.image_id]
        return float(points.x[row]), float(points.y[row])
    key = ("placed", p.id, str(p.created_at), answer.vector.tobytes())
    if key not in st.session_state:
        st.session_state[key] = projection.place(reducer(database()[1], p.id, str(p.created_at)), answer.vector)
    return st.session_state[key]


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
