"""The collection's tables: images, their paths and embeddings (the SQL of ingest, and of what pages show).

Pages and the CLI never write SQL themselves: counts, categories, thumbnails and pickers are read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from cbir.photo_metadata import PhotoMetadata
from cbir.storage import metadata as photo_metadata
from cbir.storage.models import Model


@dataclass
class NewImage:
    """One image ready to be written: facts, thumbnail and where it was found."""

    sha256: str
    path: str
    category: str | None
    width: int
    height: int
    format: str
    nbytes: int
    thumbnail: bytes
    metadata: PhotoMetadata | None = None  # what the camera recorded (image_metadata), if anything


def embedded_sha256s(conn: psycopg.Connection, model: Model, staged: bool = False) -> set[str]:
    """Content hashes that already have an embedding for this model (what a re-run can skip).

    staged: for models fitted on the collection, what counts is a stored input (`model_inputs`).
    """
    table = sql.Identifier("model_inputs" if staged else "embeddings")
    rows = conn.execute(
        sql.SQL("SELECT i.sha256 FROM images i JOIN {} e ON e.image_id = i.id WHERE e.model_id = %s").format(table),
        (model.id,),
    )
    return {r[0] for r in rows}


def model_inputs(conn: psycopg.Connection, model: Model) -> tuple[list[int], list[bytes]]:
    """(image ids, stored inputs) of a collection-fitted model, in image id order."""
    rows = conn.execute(
        "SELECT image_id, data FROM model_inputs WHERE model_id = %s ORDER BY image_id", (model.id,)
    ).fetchall()
    return [r[0] for r in rows], [bytes(r[1]) for r in rows]


def replace_embeddings(conn: psycopg.Connection, model: Model, image_ids: Sequence[int], vectors: np.ndarray) -> None:
    """Swap in a refitted model's vectors for all its images in one transaction (searches never see a mix)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM embeddings WHERE model_id = %s", (model.id,))
        column = sql.Identifier(model.column_name)
        with cur.copy(sql.SQL("COPY embeddings (image_id, model_id, {}) FROM STDIN").format(column)) as copy:
            for image_id, vector in zip(image_ids, vectors, strict=True):
                copy.write_row((image_id, model.id, model.param(vector)))


def write_batch(
    conn: psycopg.Connection,
    model: Model,
    images: list[NewImage],
    vectors: np.ndarray | None,
    aliases: list[tuple[str, str]],
    staged: bool = False,
) -> tuple[int, int]:
    """Store images, their embeddings and all paths in one transaction; returns (new images, new paths).

    Rows are written in sha256 order so concurrent ingests take row locks in the same order.
    `aliases` are (path, sha256) pairs of files whose bytes are already stored.
    staged: `vectors` are inputs of a collection-fitted model, kept in `model_inputs` until its fit.
    """
    order = sorted(range(len(images)), key=lambda i: images[i].sha256)
    new_images = 0
    with conn.transaction(), conn.cursor() as cur:
        if images and vectors is not None:
            cur.executemany(
                "INSERT INTO images (sha256, path, category, width, height, format, bytes, thumbnail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                [
                    (im.sha256, im.path, im.category, im.width, im.height, im.format, im.nbytes, im.thumbnail)
                    for im in (images[i] for i in order)
                ],
            )
            new_images = cur.rowcount
            ids = dict(
                cur.execute(
                    "SELECT sha256, id FROM images WHERE sha256 = ANY(%s)", ([im.sha256 for im in images],)
                ).fetchall()
            )
            table, column = ("model_inputs", "data") if staged else ("embeddings", model.column_name)
            cur.executemany(
                sql.SQL("INSERT INTO {} (image_id, model_id, {}) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                [
                    (ids[images[i].sha256], model.id, vectors[i].tobytes() if staged else model.param(vectors[i]))
                    for i in order
                ],
            )
            photo_metadata.insert(
                cur, [(ids[images[i].sha256], images[i].metadata) for i in order if images[i].metadata is not None]
            )
        paths = sorted({(im.path, im.sha256) for im in images} | set(aliases))
        cur.executemany(
            "INSERT INTO image_paths (path, image_id) SELECT %s, id FROM images WHERE sha256 = %s"
            " ON CONFLICT (path) DO NOTHING",
            paths,
        )
        new_paths = cur.rowcount
    return new_images, new_paths


def image_id_for_sha256(conn: psycopg.Connection, sha256: str) -> int | None:
    row = conn.execute("SELECT id FROM images WHERE sha256 = %s", (sha256,)).fetchone()
    return row[0] if row else None


def stored_vector(conn: psycopg.Connection, model: Model, image_id: int) -> np.ndarray | None:
    row = conn.execute(
        sql.SQL("SELECT {} FROM embeddings WHERE model_id = %s AND image_id = %s").format(
            sql.Identifier(model.column_name)
        ),
        (model.id, image_id),
    ).fetchone()
    return None if row is None else as_array(row[0])


def as_array(value: Any) -> np.ndarray:
    """A stored vector as numpy: float32 for vectors, bool for bit strings (psycopg reads bit varying as text)."""
    if isinstance(value, str):
        return np.frombuffer(value.encode("ascii"), dtype=np.uint8) == ord("1")
    return value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)


def thumbnails(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, bytes]:
    rows = conn.execute("SELECT id, thumbnail FROM images WHERE id = ANY(%s)", (list(image_ids),))
    return {r[0]: bytes(r[1]) for r in rows}


def counts(conn: psycopg.Connection) -> dict[str, Any]:
    """Row counts for status pages: images, paths, categories and embeddings per model."""
    images, paths, categories = conn.execute(
        "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM image_paths),"
        " (SELECT count(DISTINCT category) FROM images)"
    ).fetchone()
    per_model = conn.execute(
        "SELECT m.name, m.kind, m.dim, count(e.image_id) FROM models m"
        " LEFT JOIN embeddings e ON e.model_id = m.id GROUP BY m.id ORDER BY m.id"
    ).fetchall()
    return {
        "images": images,
        "paths": paths,
        "categories": categories,
        "models": [{"name": n, "kind": k, "dim": d, "embeddings": c} for n, k, d, c in per_model],
    }


def model_vectors(conn: psycopg.Connection, model: Model) -> tuple[np.ndarray, list[str | None], np.ndarray]:
    """(image ids, categories, vectors) of every image the model embedded, in image id order."""
    rows = conn.execute(
        sql.SQL(
            "SELECT e.image_id, i.category, e.{} FROM embeddings e JOIN images i ON i.id = e.image_id"
            " WHERE e.model_id = %s ORDER BY e.image_id"
        ).format(sql.Identifier(model.column_name)),
        (model.id,),
    ).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    dtype = bool if model.kind == "bit" else np.float32
    vectors = np.stack([as_array(r[2]) for r in rows]).astype(dtype) if rows else np.zeros((0, model.dim), dtype)
    return ids, [r[1] for r in rows], vectors


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    category: str | None


@dataclass
class Summary:
    """What the Home page and `cbir db status` show about the collection."""

    images: int
    paths: int
    categories: list[tuple[str | None, int]]  # (category, images), largest first
    models: list[dict]  # name, kind, dim, embeddings

    @property
    def empty(self) -> bool:
        return self.images == 0


def summary(conn: psycopg.Connection) -> Summary:
    c = counts(conn)
    rows = conn.execute(
        "SELECT category, count(*) FROM images GROUP BY category ORDER BY count(*) DESC, category"
    ).fetchall()
    return Summary(images=c["images"], paths=c["paths"], categories=[(r[0], r[1]) for r in rows], models=c["models"])


def categories(conn: psycopg.Connection) -> list[str]:
    """Distinct categories, sorted (images without one are left out)."""
    rows = conn.execute("SELECT DISTINCT category FROM images WHERE category IS NOT NULL ORDER BY category")
    return [r[0] for r in rows]


def category_of(conn: psycopg.Connection, image_id: int) -> str | None:
    row = conn.execute("SELECT category FROM images WHERE id = %s", (image_id,)).fetchone()
    return row[0] if row else None


def images_in(conn: psycopg.Connection, category: str | None, limit: int = 1000) -> list[ImageRow]:
    """Images of one category (None: those without a category), by path, for pickers."""
    rows = conn.execute(
        "SELECT id, path, category FROM images WHERE category IS NOT DISTINCT FROM %s ORDER BY path LIMIT %s",
        (category, limit),
    ).fetchall()
    return [ImageRow(*r) for r in rows]


def embedding_count(conn: psycopg.Connection, model: Model) -> int:
    return conn.execute("SELECT count(*) FROM embeddings WHERE model_id = %s", (model.id,)).fetchone()[0]


def images_with_paths(conn: psycopg.Connection, image_ids: Sequence[int]) -> list[tuple[int, str, int, int, list[str]]]:
    """(id, first path, width, height, every path) of each image."""
    rows = conn.execute(
        "SELECT i.id, i.path, i.width, i.height, array_agg(p.path ORDER BY p.path) FROM images i"
        " JOIN image_paths p ON p.image_id = i.id WHERE i.id = ANY(%s) GROUP BY i.id",
        (list(image_ids),),
    )
    return [tuple(r) for r in rows]


def images_at_several_paths(conn: psycopg.Connection) -> list[int]:
    """Ids of images whose very bytes were found at more than one path."""
    rows = conn.execute("SELECT image_id FROM image_paths GROUP BY image_id HAVING count(*) > 1 ORDER BY image_id")
    return [r[0] for r in rows]


@dataclass(frozen=True)
class ImageFiles:
    """Where one stored image's bytes may still be read (its first path first), and what they hashed to."""

    sha256: str
    paths: list[str]
    thumbnail: bytes


def image_files(conn: psycopg.Connection, image_id: int) -> ImageFiles | None:
    row = conn.execute(
        "SELECT i.sha256, i.thumbnail, array_remove(array_agg(p.path ORDER BY p.path <> i.path, p.path), NULL)"
        " FROM images i LEFT JOIN image_paths p ON p.image_id = i.id WHERE i.id = %s GROUP BY i.id",
        (image_id,),
    ).fetchone()
    return None if row is None else ImageFiles(sha256=row[0], paths=list(row[2]), thumbnail=bytes(row[1]))


def max_image_id(conn: psycopg.Connection) -> int:
    """The largest image id so far (0 when empty): images with larger ids were added later."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0]


def images_at_several_paths_since(conn: psycopg.Connection, after_id: int) -> list[tuple[int, str, list[str]]]:
    """(id, stored first path, every path) of the images added after `after_id` that were found at several paths."""
    rows = conn.execute(
        "SELECT i.id, i.path, array_agg(p.path ORDER BY p.path) FROM images i JOIN image_paths p ON p.image_id = i.id"
        " WHERE i.id > %s GROUP BY i.id HAVING count(*) > 1 ORDER BY i.id",
        (after_id,),
    )
    return [(r[0], r[1], list(r[2])) for r in rows]


def set_first_paths(conn: psycopg.Connection, rows: list[tuple[int, str, str | None]]) -> None:
    """Set (image id, first path, category) in one transaction: parallel writers settle which copy came first."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany("UPDATE images SET path = %s, category = %s WHERE id = %s", [(p, c, i) for i, p, c in rows])
