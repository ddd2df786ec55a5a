"""Copies in the collection: byte-identical files, near-duplicates and resized versions, and where an uploaded
copy came from (the second seed's use cases: duplicates, multi-resolution versions, the source of a copy).

Exact duplicates are images stored under several paths (same sha256). Near-duplicates are images within a
distance threshold of a group's first image under a model (phash by default: Hamming distance on 64
bits); a group whose members differ in pixel size but share an aspect ratio is reported as resized
versions. Pairs are found with an exact in-memory scan of the model's stored vectors (as `cbir eval` does).

Where an upload came from (`sources`): its mirrored and rotated variants (cbir.retrieval.variants) are
searched under every copy-finding model stored (phash and any embedding model), the nearest CANDIDATES of
each model are merged, and each candidate is checked by keypoint matching (cbir.retrieval.verify): only
those with at least `min_inliers` agreeing keypoints, `min_agreement` of all their matches, are copies, named
with the edit found. The same check
splits groups in the collection into true copies and look-alikes (`verify_groups`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psycopg
from PIL import Image
from scipy.sparse import coo_matrix
from tqdm import tqdm

from cbir.config import settings
from cbir.distances import distance_block
from cbir.embedders import get_embedder
from cbir.errors import BadArgument, BadImage, BadQuery
from cbir.images import decode, sha256_of
from cbir.retrieval import variants, verify
from cbir.retrieval.search import stored_picture
from cbir.storage import collection
from cbir.storage.models import Model, list_models, resolve_model
from cbir.storage.neighbours import nearest

# Default distance under which two images count as copies, per model (see the README's duplicates table).
DEFAULT_THRESHOLDS = {"phash": 8.0, "pixels-umap": 0.02}
DEFAULT_COSINE_THRESHOLD = 0.05  # other (Hugging Face) models: cosine distance
# Nearest images per model (over all variants) that verification checks: benchmarks/duplicates.py shows the
# original among them for every transform it makes (docs/duplicates.md).
CANDIDATES = 10
# Not searched for candidates by default: pixels-umap places an upload by its fitted map, away from the
# upload's original (an earlier run of the benchmark found no upload within its threshold).
NOT_FOR_CANDIDATES = {"pixels-umap"}
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
    distance: float | None = None  # to the group's leader (None for the leader)
    inliers: int | None = None  # keypoints agreeing with the leader, when verified
    transform: str | None = None  # the edit from the leader to this member, when verified


@dataclass
class Group:
    kind: str  # 'exact' (same bytes), 'resized' (same picture, several sizes), 'near' or 'look-alike'
    members: list[Member]
    max_distance: float = 0.0
    verified: bool | None = None  # True: every member matched the leader's keypoints; False: none did

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Source:
    """A stored image an uploaded file is (probably) a copy of, and the evidence."""

    id: int
    distance: float  # under `model` (0 for the same bytes)
    exact: bool  # the very same bytes
    paths: list[str]
    model: str | None = None  # the model whose neighbours it was among
    variant: str | None = None  # the query variant it was nearest to ("mirrored", "rotated 90")
    match: verify.Match | None = None  # the keypoint evidence, when verified

    @property
    def inliers(self) -> int | None:
        return None if self.match is None else self.match.inliers

    @property
    def transform(self) -> str | None:
        """The edit found: from the keypoints when verified, else the variant's name."""
        if self.exact:
            return "same bytes"
        return self.match.describe() if self.match is not None else self.variant

    def as_dict(self) -> dict[str, Any]:
        fields = {k: getattr(self, k) for k in ("id", "distance", "exact", "paths", "model", "variant")}
        return (
            fields
            | {"inliers": self.inliers, "transform": self.transform}
            | ({"match": self.match.as_dict()} if self.match is not None else {})
        )


@dataclass
class Origins:
    """What `sources` found: the copies, and the candidates that failed verification (look-alikes)."""

    sources: list[Source]
    rejected: list[Source]
    models: list[str]
    verified: bool  # checked by keypoints (else: distance alone)
    min_inliers: int
    min_agreement: float
    seconds: float


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
        for member, j in zip(group_members[1:], others, strict=True):
            member.distance = distance[(min(leader, j), max(leader, j))]
        result.append(Group(_kind(group_members), group_members, _spread(group_members)))
    return result


def _spread(members: list[Member]) -> float:
    return max((m.distance or 0.0 for m in members[1:]), default=0.0)


def verify_groups(
    conn: psycopg.Connection,
    groups: list[Group],
    min_inliers: int = verify.MIN_INLIERS,
    min_agreement: float = verify.MIN_AGREEMENT,
    progress: bool = False,
) -> list[Group]:
    """Each group split by keypoint matching against its leader: true copies, and look-alikes (kind 'look-alike').

    A member is matched as a copy of the leader (mirrored too), so its `transform` is the edit from the leader.
    """
    result = []
    for group in tqdm(groups, desc="verifying groups", unit="group", disable=not progress):
        leader, *others = group.members
        original = verify.features(stored_picture(conn, leader.id))
        copies, lookalikes = [], []
        for member in others:
            found = verify.best_match(verify.query_features(stored_picture(conn, member.id)), original)
            member.inliers = found.inliers if found is not None else 0
            if found is not None and found.verified(min_inliers, min_agreement):
                member.transform = found.describe()
                copies.append(member)
            else:
                lookalikes.append(member)
        if copies:
            result.append(Group(_kind([leader, *copies]), [leader, *copies], _spread([leader, *copies]), True))
        if lookalikes:
            result.append(Group("look-alike", [leader, *lookalikes], _spread([leader, *lookalikes]), False))
    return sorted(result, key=lambda g: (not g.verified, -len(g.members), g.members[0].id))


def sources(
    conn: psycopg.Connection,
    data: bytes,
    models: Sequence[Model],
    threshold: float | None = None,
    verified: bool = True,
    min_inliers: int = verify.MIN_INLIERS,
    min_agreement: float = verify.MIN_AGREEMENT,
    k: int = CANDIDATES,
) -> Origins:
    """Where an uploaded copy came from: the same bytes, else the stored copies among its candidates.

    Candidates are the nearest `k` stored images of each model over the query's variants (within `threshold`
    when given, one model only; without verification the model's default threshold applies). Verified: only
    candidates whose keypoints match are sources, most matching keypoints first; else: nearest first.
    """
    start = time.perf_counter()
    if threshold is not None and threshold < 0:
        raise BadArgument("--threshold must not be negative")
    if threshold is not None and len(models) > 1:
        raise BadArgument("--threshold is a distance of one model: give one --model with it")
    exact_id = collection.image_id_for_sha256(conn, sha256_of(data))
    picture = _picture(data)
    exclude = [exact_id] if exact_id is not None else None
    found: dict[int, variants.Candidate] = {}
    for model in models:
        limit = threshold if threshold is not None or verified else default_threshold(model.name)
        for c in candidates(conn, model, picture, k, exclude):
            if (limit is None or c.distance <= limit) and c.id not in found:
                found[c.id] = c
    members = _members(conn, [exact_id, *found] if exact_id is not None else list(found))
    hits = [Source(c.id, c.distance, False, members[c.id].paths, c.model, c.variant.name) for c in found.values()]
    rejected: list[Source] = []
    if verified:
        hits, rejected = _check(conn, picture, hits, min_inliers, min_agreement)
    else:
        hits.sort(key=lambda h: h.distance)
    same = [Source(exact_id, 0.0, True, members[exact_id].paths)] if exact_id is not None else []
    names = [m.name for m in models]
    return Origins(same + hits, rejected, names, verified, min_inliers, min_agreement, time.perf_counter() - start)


def candidates(
    conn: psycopg.Connection, model: Model, picture: Image.Image, k: int = CANDIDATES, exclude: list[int] | None = None
) -> list[variants.Candidate]:
    """The nearest k stored images to any variant of a picture under one model, at their best distance."""
    chosen = variants.for_kind(model.kind)
    vectors = get_embedder(model.name).embed(variants.images(picture, chosen))
    found = [
        (v, [(h.id, h.distance) for h in nearest(conn, model, vec, k=k, exclude=exclude)])
        for v, vec in zip(chosen, vectors, strict=True)
    ]
    return variants.merge(model.name, found, k)


def _check(
    conn: psycopg.Connection, picture: Image.Image, hits: list[Source], min_inliers: int, min_agreement: float
) -> tuple[list[Source], list[Source]]:
    """Candidates split by keypoint matching into copies (most inliers first) and look-alikes."""
    query = verify.query_features(picture)
    for hit in hits:
        hit.match = verify.best_match(query, verify.features(stored_picture(conn, hit.id)))
    ok = [h.match is not None and h.match.verified(min_inliers, min_agreement) for h in hits]
    copies = sorted((h for h, good in zip(hits, ok, strict=True) if good), key=lambda h: -h.inliers)
    return copies, [h for h, good in zip(hits, ok, strict=True) if not good]


def _picture(data: bytes) -> Image.Image:
    limit = settings().max_upload_bytes
    if len(data) > limit:
        raise BadQuery(f"query image is {len(data)} bytes, over the limit of {limit} (CBIR_MAX_UPLOAD_BYTES)")
    try:
        return decode(data).rgb
    except BadImage as exc:
        raise BadQuery(f"query is not a usable image: {exc}") from None


def copy_models(conn: psycopg.Connection, names: Sequence[str] | None = None) -> list[Model]:
    """The models an upload's candidates come from: those named, else every stored copy-finding model."""
    if names:
        return [resolve_model(conn, n) for n in names]
    stored = [m for m in list_models(conn) if m.name not in NOT_FOR_CANDIDATES]
    return stored or [resolve_model(conn, None)]


def model_for(conn: psycopg.Connection, name: str | None) -> Model:
    """The model copies are judged by: the one named, else phash when stored, else the one search uses."""
    names = [m.name for m in list_models(conn)]
    return resolve_model(conn, name or ("phash" if "phash" in names else None))
