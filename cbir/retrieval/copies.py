"""Copies in the collection: byte-identical files, near-duplicates and resized versions, and where an uploaded
copy came from (the second seed's use cases: duplicates, multi-resolution versions, the source of a copy).

Exact duplicates are images stored under several paths (same sha256). Near-duplicates are images within a
distance threshold of a group's first image under a model (phash by default: Hamming distance on 64
bits); a group whose members differ in pixel size but share an aspect ratio is reported as resized
versions. Pairs are found with an exact in-memory scan of the model's stored vectors (as `cbir eval` does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psycopg
from scipy.sparse import coo_matrix

from cbir.distances import distance_block
from cbir.errors import BadArgument
from cbir.images import sha256_of
from cbir.retrieval.search import resolve_query
from cbir.storage import collection
from cbir.storage.models import Model, list_models, resolve_model
from cbir.storage.neighbours import nearest

# Default distance under which two images count as copies, per model (see the README's duplicates table).
DEFAULT_THRESHOLDS = {"phash": 8.0, "pixels-umap": 0.02}
DEFAULT_COSINE_THRESHOLD = 0.05  # other (Hugging Face) models: cosine distance
ASPECT_TOLERANCE = 0.02  # resized versions keep the aspect ratio (within rounding)...
MIN_SCALE = 1.2  # ... and differ in size by at least this factor
BLOCK = 1024


@dataclass
class Member:
    id: int
    path: str
    width: int
    height: int
    paths: list[str] = field(default_factory=list)  # every path these bytes were found at


@dataclass
class Group:
    kind: str  # 'exact' (same bytes), 'resized' (same picture, several sizes) or 'near'
    members: list[Member]
    max_distance: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Source:
    """A stored image an uploaded file is (probably) a copy of."""

    id: int
    distance: float
    exact: bool  # the very same bytes
    paths: list[str]


def default_threshold(model_name: str) -> float:
    return DEFAULT_THRESHOLDS.get(model_name, DEFAULT_COSINE_THRESHOLD)


def _members(conn: psycopg.Connection, image_ids: list[int]) -> dict[int, Member]:
    return {r[0]: Member(*r) for r in collection.images_with_paths(conn, image_ids)}


def exact_duplicates(conn: psycopg.Connection) -> list[Group]:
    """Images whose very bytes were found at several paths."""
    ids = collection.images_at_several_paths(conn)
    members = _members(conn, ids)
    return [Group("exact", [members[i]]) for i in sorted(ids)]


def close_pairs(vectors: np.ndarray, metric: str, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) within `threshold`, with their distances: an exact scan in blocks."""
    rows, cols, dists = [], [], []
    for start in range(0, len(vectors), BLOCK):
        d = distance_block(vectors[start : start + BLOCK], vectors, metric)
        i, j = np.nonzero(d <= threshold)
        keep = start + i < j
        rows.append(start + i[keep])
        cols.append(j[keep])
        dists.append(d[i[keep], j[keep]])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)


def group_pairs(n: int, rows: np.ndarray, cols: np.ndarray) -> list[list[int]]:
    """Groups (of two or more) around leaders: each member is within the threshold of its group's leader.

    Plain transitive closure chains look-alikes (phash links hundreds of Motorbikes on white through small
    steps), so leaders are taken in order and each claims its still unclaimed close neighbours.
    """
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()
    claimed = np.zeros(n, dtype=bool)
    groups = []
    for leader in np.flatnonzero(np.diff(graph.indptr) > 0):
        if claimed[leader]:
            continue
        neighbours = graph.indices[graph.indptr[leader] : graph.indptr[leader + 1]]
        members = [int(leader)] + sorted(int(j) for j in neighbours if not claimed[j])
        if len(members) > 1:
            claimed[members] = True
            groups.append(members)
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def _kind(members: list[Member]) -> str:
    """'resized' when the sizes differ by a real scale factor while the aspect ratio is kept, else 'near'."""
    widths = [m.width for m in members]
    aspects = [m.width / m.height for m in members]
    same_shape = max(aspects) / min(aspects) <= 1 + ASPECT_TOLERANCE
    return "resized" if same_shape and max(widths) >= MIN_SCALE * min(widths) else "near"


def near_duplicates(conn: psycopg.Connection, model: Model, threshold: float | None = None) -> list[Group]:
    """Groups of images within `threshold` of their group's first (leading) image under the model."""
    threshold = default_threshold(model.name) if threshold is None else threshold
    if threshold < 0:
        raise BadArgument("--threshold must not be negative")
    ids, _, vectors = collection.model_vectors(conn, model)
    rows, cols, dists = close_pairs(vectors, model.metric, threshold)
    distance = {(int(i), int(j)): float(d) for i, j, d in zip(rows, cols, dists, strict=True)}
    groups = group_pairs(len(ids), rows, cols)
    members = _members(conn, [int(ids[i]) for g in groups for i in g])
    result = []
    for leader, *others in groups:
        group_members = [members[int(ids[i])] for i in (leader, *others)]
        spread = max(distance[(min(leader, j), max(leader, j))] for j in others)
        result.append(Group(_kind(group_members), group_members, spread))
    return result


def sources(
    conn: psycopg.Connection, model: Model, data: bytes, threshold: float | None = None, k: int = 5
) -> list[Source]:
    """Where an uploaded copy came from: the same bytes, or the stored images within `threshold` of it."""
    threshold = default_threshold(model.name) if threshold is None else threshold
    exact_id = collection.image_id_for_sha256(conn, sha256_of(data))
    query = resolve_query(conn, model, data)
    hits = nearest(conn, model, query.vector, k=k, exclude=[exact_id] if exact_id is not None else None)
    found = [(exact_id, 0.0, True)] if exact_id is not None else []
    found += [(h.id, h.distance, False) for h in hits if h.distance <= threshold]
    members = _members(conn, [i for i, _, _ in found])
    return [Source(i, d, exact, members[i].paths) for i, d, exact in found]


def model_for(conn: psycopg.Connection, name: str | None) -> Model:
    """The model copies are judged by: the one named, else phash when stored, else the one search uses."""
    names = [m.name for m in list_models(conn)]
    return resolve_model(conn, name or ("phash" if "phash" in names else None))
