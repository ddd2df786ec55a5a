"""One dashboard query: the neighbours from `cbir.search`, plus what a page shows beside them (the query's
own stored image and category, precision@k, the vector for placing the query on the map)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg

from cbir import store
from cbir.images import BadImage, decode, thumbnail_jpeg
from cbir.search import Hit, nearest, resolve_model, resolve_query


@dataclass
class Answer:
    hits: list[Hit]
    model: str
    vector: np.ndarray
    image_id: int | None  # the stored image the query is, if it is one
    category: str | None  # the query's category when known (stored, or given by the user)
    filtered: bool  # a category filter was applied
    seconds: float
    thumbnail: bytes | None = None  # the query as a small JPEG, for showing it beside its results

    @property
    def precision(self) -> float | None:
        """Share of hits in the query's category; None when unknown, or meaningless under a category filter."""
        if self.category is None or self.filtered or not self.hits:
            return None
        return sum(h.category == self.category for h in self.hits) / len(self.hits)


def lookup(
    conn: psycopg.Connection,
    query: int | str | Path | bytes,
    k: int = 10,
    model: str | None = None,
    category: str | None = None,
    query_category: str | None = None,
) -> Answer:
    """Search like `cbir.search.search`, keeping what the page needs; `query_category` labels a new image."""
    start = time.perf_counter()
    model_row = resolve_model(conn, model)
    q = resolve_query(conn, model_row, query)
    exclude = [q.image_id] if q.image_id is not None else None
    hits = nearest(conn, model_row, q.vector, k=k, category=category, exclude=exclude)
    return Answer(
        hits=hits,
        model=model_row.name,
        vector=q.vector,
        image_id=q.image_id,
        category=q.category or query_category,
        filtered=category is not None,
        seconds=time.perf_counter() - start,
        thumbnail=_thumbnail(conn, q.image_id, query),
    )


def _thumbnail(conn: psycopg.Connection, image_id: int | None, query: int | str | Path | bytes) -> bytes | None:
    """The stored thumbnail of a stored query, else one made from the query's bytes (any format, even TIFF)."""
    if image_id is not None:
        return store.thumbnails(conn, [image_id]).get(image_id)
    data = query if isinstance(query, bytes) else Path(query).read_bytes()
    try:
        return thumbnail_jpeg(decode(data).rgb)
    except BadImage:
        return None
