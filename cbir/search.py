"""Nearest-neighbour queries: the one function the CLI, the dashboard and the evaluation all call.

Queries go through the model's HNSW index (cosine distance on unit vectors, Hamming on bit strings).
`hnsw.ef_search` comes from CBIR_EF_SEARCH (default 200, config.DEFAULT_EF_SEARCH) and is raised to k when
k is larger. 200 is the smallest value of benchmarks/search_bench.py's curve with recall@10 >= 0.98 at 100k
rows (p50 ~17x faster than an exact scan); 10k rows reach 1.0 with any value. At 1M rows recall is bounded
by the index's graph more than by ef_search: an index built WITH (m = 32, ef_construction = 128) and
CBIR_EF_SEARCH=400 gave 0.985 at 30x faster than exact (BENCHMARKS.md, docs/scaling.md).
Filtered queries enable pgvector's iterative index scans, so a category filter or the exclusion of the
query image never silently returns fewer than k rows when k exist.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image
from psycopg import sql

from cbir import db, store
from cbir.config import CbirError, settings
from cbir.embedders import canonical_name, get_embedder
from cbir.images import MAX_UPLOAD_BYTES, BadImage, Picture, decode, read_image_file, sha256_of


@dataclass
class Hit:
    id: int
    path: str
    category: str | None
    distance: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Query:
    """A resolved query: its vector, and the stored image it is (if any), which is left out of results."""

    vector: np.ndarray
    image_id: int | None = None
    category: str | None = None


def resolve_model(conn: psycopg.Connection, name: str | None) -> store.Model:
    """The stored model to search: the one named, else CBIR_MODEL, else the only one stored, else the default."""
    stored = store.list_models(conn)
    if name is None and not os.environ.get("CBIR_MODEL") and len(stored) == 1:
        return stored[0]
    name = name or settings().model
    model = store.get_model(conn, canonical_name(name))
    if model is None:
        have = ", ".join(m.name for m in stored) or "none yet"
        raise CbirError(f"no embeddings for model {name!r} (models in the database: {have}); run cbir ingest first")
    return model


def query_from_id(conn: psycopg.Connection, model: store.Model, image_id: int) -> Query:
    vector = store.stored_vector(conn, model, image_id)
    if vector is None:
        raise CbirError(f"image id {image_id} has no embedding for model {model.name!r}")
    category = conn.execute("SELECT category FROM images WHERE id = %s", (image_id,)).fetchone()[0]
    return Query(vector=vector, image_id=image_id, category=category)


def query_from_bytes(conn: psycopg.Connection, model: store.Model, data: bytes) -> Query:
    """Use the stored vector when these bytes are already in the collection, else embed them."""
    image_id = store.image_id_for_sha256(conn, sha256_of(data))
    if image_id is not None and (vector := store.stored_vector(conn, model, image_id)) is not None:
        category = conn.execute("SELECT category FROM images WHERE id = %s", (image_id,)).fetchone()[0]
        return Query(vector=vector, image_id=image_id, category=category)
    try:
        picture = decode(data)
    except BadImage as exc:
        raise CbirError(f"query is not a usable image: {exc}") from None
    return Query(vector=embed_picture(model, picture), image_id=image_id)


def embed_picture(model: store.Model, picture: Picture | Image.Image) -> np.ndarray:
    rgb = picture.rgb if isinstance(picture, Picture) else picture.convert("RGB")
    return get_embedder(model.name).embed([rgb])[0]


def resolve_query(conn: psycopg.Connection, model: store.Model, query: int | str | Path | bytes) -> Query:
    """An image id (int or digits), a file path, or raw image bytes."""
    if isinstance(query, bytes):
        if len(query) > MAX_UPLOAD_BYTES:
            raise CbirError(
                f"query image is {len(query)} bytes, over the limit of {MAX_UPLOAD_BYTES} (CBIR_MAX_UPLOAD_BYTES)"
            )
        return query_from_bytes(conn, model, query)
    if isinstance(query, int) or (isinstance(query, str) and query.isdigit() and not Path(query).exists()):
        return query_from_id(conn, model, int(query))
    path = Path(query)
    try:
        data = read_image_file(path)
    except BadImage as exc:
        raise CbirError(f"cannot use query image {path}: {exc}") from None
    return query_from_bytes(conn, model, data)


def nearest_query(
    model: store.Model,
    vector: np.ndarray,
    k: int,
    category: str | None = None,
    exclude: list[int] | None = None,
) -> tuple[sql.Composed, dict]:
    """The SQL of a k-NN query; ORDER BY uses the exact expression and operator of the model's index."""
    # The model id is inlined: a parameter's type (smallint for small ints) would keep the planner from
    # matching the partial index predicate `model_id = <id>`.
    where = [sql.SQL("e.model_id = {}").format(sql.Literal(model.id))]
    if category is not None:
        where.append(sql.SQL("i.category = %(category)s"))
    if exclude:
        where.append(sql.SQL("e.image_id <> ALL(%(exclude)s)"))
    query = sql.SQL(
        "WITH hits AS MATERIALIZED ("
        " SELECT e.image_id, {column} {op} %(vector)s AS distance"
        " FROM embeddings e JOIN images i ON i.id = e.image_id"
        " WHERE {where} ORDER BY distance LIMIT %(k)s)"
        " SELECT h.image_id, i.path, i.category, h.distance"
        " FROM hits h JOIN images i ON i.id = h.image_id ORDER BY h.distance, h.image_id"
    ).format(column=model.column(), op=model.operator, where=sql.SQL(" AND ").join(where))
    params = {"category": category, "exclude": exclude, "vector": model.param(vector), "k": k}
    return query, params


def nearest(
    conn: psycopg.Connection,
    model: store.Model,
    vector: np.ndarray,
    k: int = 10,
    category: str | None = None,
    exclude: list[int] | None = None,
    ef_search: int | None = None,
) -> list[Hit]:
    """The k nearest stored images to a vector, optionally within one category."""
    if k < 1:
        raise CbirError("k must be at least 1")
    ef = max(ef_search or settings().ef_search, k)
    query, params = nearest_query(model, vector, k, category, exclude)
    with conn.transaction():
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        rows = conn.execute(query, params).fetchall()
    return [Hit(id=r[0], path=r[1], category=r[2], distance=float(r[3])) for r in rows]


def search(
    query: int | str | Path | bytes,
    k: int = 10,
    model: str | None = None,
    category: str | None = None,
    conn: psycopg.Connection | None = None,
) -> list[Hit]:
    """Nearest images to a query image (id, path or bytes); a stored query image is left out of its results."""
    own = conn is None
    conn = conn or db.connect()
    try:
        model_row = resolve_model(conn, model)
        q = resolve_query(conn, model_row, query)
        exclude = [q.image_id] if q.image_id is not None else None
        return nearest(conn, model_row, q.vector, k=k, category=category, exclude=exclude)
    finally:
        if own:
            conn.close()
