"""Reading and writing the images, models and embeddings tables (the SQL of ingest lives here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector import Bit
from psycopg import sql

from cbir.config import CbirError

_INDEX_LOCK_KEY = 0x63626973  # serialises per-model index creation across processes


@dataclass(frozen=True)
class Model:
    """A row of `models`, with the pieces of SQL that address its vectors through its index."""

    id: int
    name: str
    kind: str
    dim: int
    metric: str = "cosine"  # for kind 'vector': 'cosine' (unit vectors) or 'l2' (e.g. UMAP coordinates)

    @property
    def column_name(self) -> str:
        return "bits" if self.kind == "bit" else "embedding"

    def column(self, table: str | None = "e") -> sql.Composable:
        """The typed expression the model's HNSW index is built on; queries must use it verbatim."""
        col: sql.Composable = sql.Identifier(self.column_name)
        if table:
            col = sql.SQL("{}.{}").format(sql.Identifier(table), col)
        type_name = "bit" if self.kind == "bit" else "vector"
        return sql.SQL("{}::{}({})").format(col, sql.SQL(type_name), sql.Literal(self.dim))

    @property
    def operator(self) -> sql.Composable:
        """Cosine distance for unit vectors, Euclidean for 'l2' models, Hamming distance for bit strings."""
        if self.kind == "bit":
            return sql.SQL("<~>")
        return sql.SQL("<->" if self.metric == "l2" else "<=>")

    @property
    def opclass(self) -> sql.Composable:
        """The HNSW operator class that matches `operator`."""
        if self.kind == "bit":
            return sql.SQL("bit_hamming_ops")
        return sql.SQL("vector_l2_ops" if self.metric == "l2" else "vector_cosine_ops")

    def param(self, vector: np.ndarray) -> Any:
        return Bit(np.asarray(vector, dtype=bool)) if self.kind == "bit" else np.asarray(vector, dtype=np.float32)


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


_MODEL_COLUMNS = "id, name, kind, dim, coalesce(info->>'metric', 'cosine')"


def _model_from_row(row: Sequence[Any]) -> Model:
    return Model(id=row[0], name=row[1], kind=row[2], dim=row[3], metric=row[4])


def get_model(conn: psycopg.Connection, name: str) -> Model | None:
    row = conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = %s", (name,)).fetchone()
    return _model_from_row(row) if row else None


def list_models(conn: psycopg.Connection) -> list[Model]:
    rows = conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY id").fetchall()
    return [_model_from_row(r) for r in rows]


def ensure_model(conn: psycopg.Connection, name: str, kind: str, dim: int, info: dict[str, Any]) -> Model:
    """Register a model and its HNSW index (idempotent, safe from concurrent processes)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INDEX_LOCK_KEY,))
        conn.execute(
            "INSERT INTO models (name, kind, dim, info) VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (name, kind, dim, json.dumps(info)),
        )
        model = get_model(conn, name)
        assert model is not None
        if (model.kind, model.dim) != (kind, dim):
            raise CbirError(
                f"model {name!r} is stored as {model.kind}({model.dim}) but now produces {kind}({dim}); "
                "use a different model name"
            )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON embeddings USING hnsw (({}) {}) WHERE model_id = {}").format(
                sql.Identifier(f"embeddings_hnsw_model_{model.id}"),
                model.column(table=None),
                model.opclass,
                sql.Literal(model.id),
            )
        )
    return model


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


def update_model_info(conn: psycopg.Connection, model: Model, info: dict[str, Any]) -> None:
    """Merge facts learned after registration (e.g. when and on how many images a model was fitted)."""
    conn.execute("UPDATE models SET info = info || %s::jsonb WHERE id = %s", (json.dumps(info), model.id))


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
