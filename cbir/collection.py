"""What is in the collection: the facts the dashboard shows around a search (counts, categories, models,
where the database lives) and thumbnails by id, so pages never write SQL themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from cbir import db, store
from cbir.config import CbirError, settings
from cbir.search import resolve_model


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    category: str | None


@dataclass
class Summary:
    images: int
    paths: int
    categories: list[tuple[str | None, int]]  # (category, images), largest first
    models: list[dict]  # name, kind, dim, embeddings
    database: str  # masked URL and whether it is the embedded server

    @property
    def empty(self) -> bool:
        return self.images == 0


def database_location(url: str | None = None) -> str:
    """The database in use, password masked: a URL users can recognise, and where embedded data lives."""
    s = settings()
    url = url or db.database_url()
    where = "from CBIR_DATABASE_URL" if s.database_url else f"embedded, data in {s.pgdata}"
    return f"{db.describe_url(url)} ({where})"


def summary(conn: psycopg.Connection, url: str | None = None) -> Summary:
    counts = store.counts(conn)
    rows = conn.execute(
        "SELECT category, count(*) FROM images GROUP BY category ORDER BY count(*) DESC, category"
    ).fetchall()
    return Summary(
        images=counts["images"],
        paths=counts["paths"],
        categories=[(r[0], r[1]) for r in rows],
        models=counts["models"],
        database=database_location(url),
    )


def categories(conn: psycopg.Connection) -> list[str]:
    """Distinct categories, sorted (images without one are left out)."""
    rows = conn.execute("SELECT DISTINCT category FROM images WHERE category IS NOT NULL ORDER BY category")
    return [r[0] for r in rows]


def model_names(conn: psycopg.Connection) -> list[str]:
    """Models registered in the database, oldest first."""
    return [m.name for m in store.list_models(conn)]


def default_model(conn: psycopg.Connection) -> str | None:
    """The model a search uses when none is picked (as `cbir search`), else the first stored one."""
    try:
        return resolve_model(conn, None).name
    except CbirError:
        names = model_names(conn)
        return names[0] if names else None


def images_in(conn: psycopg.Connection, category: str | None, limit: int = 1000) -> list[ImageRow]:
    """Images of one category (None: those without a category), by path, for pickers."""
    rows = conn.execute(
        "SELECT id, path, category FROM images WHERE category IS NOT DISTINCT FROM %s ORDER BY path LIMIT %s",
        (category, limit),
    ).fetchall()
    return [ImageRow(*r) for r in rows]


def thumbnails(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, bytes]:
    """Stored JPEG thumbnails by image id: the dashboard needs no access to the image files."""
    return store.thumbnails(conn, image_ids)
