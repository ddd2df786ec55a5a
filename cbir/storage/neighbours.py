"""The k-nearest-neighbour query, written once: the CLI, the dashboard, copies and the API all run this SQL.

Queries go through the model's HNSW index (the exact expression and operator of `Model`). `hnsw.ef_search`
comes from CBIR_EF_SEARCH (default 200, config.DEFAULT_EF_SEARCH) and is raised to k when k is larger.
200 is the smallest value of benchmarks/search_bench.py's curve with recall@10 >= 0.98 at 100k rows (p50
~17x faster than an exact scan); 10k rows reach 1.0 with any value. At 1M rows recall is bounded by the
index's graph more than by ef_search: an index built WITH (m = 32, ef_construction = 128) and
CBIR_EF_SEARCH=400 gave 0.985 at 30x faster than exact (BENCHMARKS.md, docs/scaling.md).
Filtered queries enable pgvector's iterative index scans, so a category filter, a filter on what the camera
recorded (time taken, camera: `image_metadata`) or the exclusion of the query image never silently returns
fewer than k rows when k exist.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import psycopg
from psycopg import sql

from cbir.config import settings
from cbir.errors import BadArgument
from cbir.storage.models import Model
from cbir.storage.tags import check_tag


@dataclass
class Hit:
    id: int
    path: str
    category: str | None
    distance: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PhotoFilter:
    """Which photos a search keeps to, beyond the category; the CLI, pages and API pass this one value.

    taken_after (inclusive) and taken_before (exclusive) compare with the camera's wall-clock time taken;
    camera matches image_metadata.camera containing the text, case-insensitively. Images that recorded no
    such fact are left out by these (`active`). tag / not_tag: only images with / without that tag
    (image_tags). An empty time span or a malformed tag is refused when the filter is made.
    """

    taken_after: datetime | None = None
    taken_before: datetime | None = None
    camera: str | None = None
    tag: str | None = None
    not_tag: str | None = None

    def __post_init__(self) -> None:
        if self.taken_after is not None and self.taken_before is not None and self.taken_after >= self.taken_before:
            raise BadArgument("the time taken filter is empty: --taken-after must be earlier than --taken-before")
        for name in (self.tag, self.not_tag):
            if name is not None:
                check_tag(name)

    @property
    def active(self) -> bool:
        """Whether a filter on what the camera recorded is set (the query then joins image_metadata)."""
        return self.taken_after is not None or self.taken_before is not None or self.camera is not None


ANY_PHOTO = PhotoFilter()


def nearest_query(
    model: Model,
    vector: np.ndarray,
    k: int,
    category: str | None = None,
    exclude: list[int] | None = None,
    photo: PhotoFilter = ANY_PHOTO,
) -> tuple[sql.Composed, dict]:
    """The SQL of a k-NN query; ORDER BY uses the exact expression and operator of the model's index."""
    # The model id is inlined: a parameter's type (smallint for small ints) would keep the planner from
    # matching the partial index predicate `model_id = <id>`.
    where = [sql.SQL("e.model_id = {}").format(sql.Literal(model.id))]
    if category is not None:
        where.append(sql.SQL("i.category = %(category)s"))
    if exclude:
        where.append(sql.SQL("e.image_id <> ALL(%(exclude)s)"))
    if photo.taken_after is not None:
        where.append(sql.SQL("m.taken_at >= %(taken_after)s"))
    if photo.taken_before is not None:
        where.append(sql.SQL("m.taken_at < %(taken_before)s"))
    if photo.camera is not None:
        where.append(sql.SQL("strpos(lower(m.camera), lower(%(camera)s)) > 0"))
    if photo.tag is not None:
        where.append(sql.SQL("EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = e.image_id AND t.tag = %(tag)s)"))
    if photo.not_tag is not None:
        where.append(
            sql.SQL("NOT EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = e.image_id AND t.tag = %(not_tag)s)")
        )
    source = sql.SQL("FROM embeddings e JOIN images i ON i.id = e.image_id{join} WHERE {where}").format(
        join=sql.SQL(" JOIN image_metadata m ON m.image_id = e.image_id" if photo.active else ""),
        where=sql.SQL(" AND ").join(where),
    )
    query = sql.SQL(
        "WITH hits AS MATERIALIZED ({hits})"  # through the index (bit-rerank: candidates, re-ranked exactly)
        " SELECT h.image_id, i.path, i.category, h.distance"
        " FROM hits h JOIN images i ON i.id = h.image_id ORDER BY h.distance, h.image_id"
    ).format(hits=model.hits(source))
    params = {"category": category, "exclude": exclude, "vector": model.param(vector), "k": k}
    params["candidates"] = k * settings().rerank
    params |= asdict(photo)
    return query, params


def nearest(
    conn: psycopg.Connection,
    model: Model,
    vector: np.ndarray,
    k: int = 10,
    category: str | None = None,
    exclude: list[int] | None = None,
    ef_search: int | None = None,
    photo: PhotoFilter = ANY_PHOTO,
) -> list[Hit]:
    """The k nearest stored images to a vector, optionally within one category, time span, camera or tag."""
    if k < 1:
        raise BadArgument("k must be at least 1")
    ef = max(ef_search or settings().ef_search, k)
    if model.reranks:  # the candidate list comes from the index too (pgvector's ef_search tops out at 1000)
        ef = max(ef, min(k * settings().rerank, 1000))
    query, params = nearest_query(model, vector, k, category, exclude, photo)
    with conn.transaction():
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        rows = conn.execute(query, params).fetchall()
    return [Hit(id=r[0], path=r[1], category=r[2], distance=float(r[3])) for r in rows]


def neighbours_of_stored(
    conn: psycopg.Connection, model: Model, image_ids: list[int], k: int, ef_search: int | None = None
) -> dict[int, list[tuple[int, float]]]:
    """The k nearest other images of each stored image in `image_ids` (one HNSW scan each, one statement).

    A lateral join runs the index query of `nearest` once per image, with the stored vector as the query and
    the image itself left out (iterative scans keep k rows when k exist). Returns id -> [(neighbour, distance)],
    nearest first.
    """
    if k < 1:
        raise BadArgument("k must be at least 1")
    source = sql.SQL("FROM embeddings e WHERE e.model_id = {} AND e.image_id <> q.image_id").format(
        sql.Literal(model.id)
    )
    query = sql.SQL(
        "SELECT q.image_id, h.image_id, h.distance FROM embeddings q CROSS JOIN LATERAL ({hits}) h"
        " WHERE q.model_id = {model} AND q.image_id = ANY(%(ids)s) ORDER BY q.image_id, h.distance, h.image_id"
    ).format(hits=model.hits(source, model.stored("q")), model=sql.Literal(model.id))
    ef = max(ef_search or settings().ef_search, k)
    if model.reranks:
        ef = max(ef, min(k * settings().rerank, 1000))
    found: dict[int, list[tuple[int, float]]] = {i: [] for i in image_ids}
    with conn.transaction():
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        params = {"ids": list(image_ids), "k": k, "candidates": k * settings().rerank}
        for query_id, other, distance in conn.execute(query, params):
            found[query_id].append((other, float(distance)))
    return found
