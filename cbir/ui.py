"""Streamlit building blocks shared by the dashboard's pages: the cached database pool and model, and the
thumbnail grid. Pages stay a layout of widgets over these and the cbir API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
import streamlit as st
from psycopg_pool import ConnectionPool

from cbir import collection, db
from cbir.config import CbirError, settings
from cbir.embedders import Embedder, get_embedder

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
    pool, _ = database()
    with pool.connection() as conn:
        yield conn


@st.cache_resource(show_spinner="Loading the model (once per server)...")
def embedder(name: str) -> Embedder:
    """The model stays loaded across queries and sessions."""
    return get_embedder(name)


def fail(exc: CbirError) -> None:
    """Show a user error as one line and end this page run."""
    st.error(str(exc))
    st.stop()


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
