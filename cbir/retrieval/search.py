"""Query by image: the one search API that the CLI, the dashboard, copies and Python callers share.

A query is a stored image id, a file path or raw image bytes. Bytes already in the collection reuse their
stored vector; new bytes are decoded and embedded with the model. The query's own stored image is left out
of its results. `lookup` returns what a page needs beside the neighbours (the query's category and
thumbnail, precision@k, its vector for the map); `search` returns the neighbours only. `stored_picture` and
`query_picture` give the full pictures a page explains a match on (cbir.analysis.explain).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from cbir.config import settings
from cbir.embedders import get_embedder
from cbir.errors import BadImage, BadQuery
from cbir.images import Picture, decode, read_image_file, sha256_of, thumbnail_jpeg
from cbir.storage import collection, db
from cbir.storage.models import Model, resolve_model
from cbir.storage.neighbours import ANY_PHOTO, Hit, PhotoFilter, nearest

QueryInput = int | str | Path | bytes


@dataclass
class Query:
    """A resolved query: its vector, the stored image it is (if any), and the bytes it was read from."""

    vector: np.ndarray
    image_id: int | None = None
    category: str | None = None
    data: bytes | None = None


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


def embed_picture(model: Model, picture: Picture | Image.Image) -> np.ndarray:
    rgb = picture.rgb if isinstance(picture, Picture) else picture.convert("RGB")
    return get_embedder(model.name).embed([rgb])[0]


def query_from_id(conn: psycopg.Connection, model: Model, image_id: int) -> Query:
    vector = collection.stored_vector(conn, model, image_id)
    if vector is None:
        raise BadQuery(f"image id {image_id} has no embedding for model {model.name!r}")
    return Query(vector=vector, image_id=image_id, category=collection.category_of(conn, image_id))


def query_from_bytes(conn: psycopg.Connection, model: Model, data: bytes) -> Query:
    """Use the stored vector when these bytes are already in the collection, else embed them."""
    image_id = collection.image_id_for_sha256(conn, sha256_of(data))
    if image_id is not None and (vector := collection.stored_vector(conn, model, image_id)) is not None:
        return Query(vector=vector, image_id=image_id, category=collection.category_of(conn, image_id), data=data)
    try:
        picture = decode(data)
    except BadImage as exc:
        raise BadQuery(f"query is not a usable image: {exc}") from None
    return Query(vector=embed_picture(model, picture), image_id=image_id, data=data)


def resolve_query(conn: psycopg.Connection, model: Model, query: QueryInput) -> Query:
    """An image id (int or digits), a file path, or raw image bytes."""
    if isinstance(query, bytes):
        limit = settings().max_upload_bytes
        if len(query) > limit:
            raise BadQuery(f"query image is {len(query)} bytes, over the limit of {limit} (CBIR_MAX_UPLOAD_BYTES)")
        return query_from_bytes(conn, model, query)
    if isinstance(query, int) or (isinstance(query, str) and query.isdigit() and not Path(query).exists()):
        return query_from_id(conn, model, int(query))
    path = Path(query)
    try:
        data = read_image_file(path)
    except BadImage as exc:
        raise BadQuery(f"cannot use query image {path}: {exc}") from None
    return query_from_bytes(conn, model, data)


def lookup(
    conn: psycopg.Connection,
    query: QueryInput,
    k: int = 10,
    model: str | None = None,
    category: str | None = None,
    query_category: str | None = None,
    thumbnail: bool = True,
    photo: PhotoFilter = ANY_PHOTO,
) -> Answer:
    """The k nearest stored images to a query, with what a page shows beside them.

    category: only return images of this category; query_category: the label of a new (unstored) query;
    photo: only images whose camera recorded such a time or name (image_metadata), or with/without a tag.
    """
    start = time.perf_counter()
    model_row = resolve_model(conn, model)
    q = resolve_query(conn, model_row, query)
    exclude = [q.image_id] if q.image_id is not None else None
    hits = nearest(conn, model_row, q.vector, k=k, category=category, exclude=exclude, photo=photo)
    return Answer(
        hits=hits,
        model=model_row.name,
        vector=q.vector,
        image_id=q.image_id,
        category=q.category or query_category,
        filtered=category is not None,
        seconds=time.perf_counter() - start,
        thumbnail=_thumbnail(conn, q) if thumbnail else None,
    )


def search(
    query: QueryInput,
    k: int = 10,
    model: str | None = None,
    category: str | None = None,
    conn: psycopg.Connection | None = None,
    photo: PhotoFilter = ANY_PHOTO,
) -> list[Hit]:
    """Nearest images to a query image (id, path or bytes); a stored query image is left out of its results."""
    with db.connection(conn) as c:
        return lookup(c, query, k=k, model=model, category=category, thumbnail=False, photo=photo).hits


def _thumbnail(conn: psycopg.Connection, q: Query) -> bytes | None:
    """The stored thumbnail of a stored query, else one made from the query's bytes (any format, even TIFF)."""
    if q.image_id is not None:
        return collection.thumbnails(conn, [q.image_id]).get(q.image_id)
    try:
        return thumbnail_jpeg(decode(q.data).rgb) if q.data else None
    except BadImage:
        return None


def stored_picture(conn: psycopg.Connection, image_id: int) -> Image.Image:
    """A stored image at full size from the first of its paths still holding the same bytes; else its thumbnail.

    The hash check matters: a file edited since ingest is not the image that was matched.
    """
    files = collection.image_files(conn, image_id)
    if files is None:
        raise BadQuery(f"no stored image has id {image_id}")
    for path in files.paths:
        try:
            picture = decode(read_image_file(path))
        except BadImage:
            continue  # moved, deleted or unreadable: try its other paths
        if picture.sha256 == files.sha256:
            return picture.rgb
    return decode(files.thumbnail).rgb


def query_picture(conn: psycopg.Connection, query: QueryInput) -> Image.Image:
    """The full picture of a query as `lookup` reads it: upload bytes, a stored image id, or a file path."""
    if isinstance(query, int) or (isinstance(query, str) and query.isdigit() and not Path(query).exists()):
        return stored_picture(conn, int(query))
    try:
        data = query if isinstance(query, bytes) else read_image_file(Path(query))
        return decode(data).rgb
    except BadImage as exc:
        raise BadQuery(f"query is not a usable image: {exc}") from None
