"""Images that are probably in the wrong folder (label suspects), and how unique and how typical each image is.

For a model, every image's K nearest neighbours come from the model's HNSW index (pgvector, one lateral
statement per block of images: `storage.neighbours.neighbours_of_stored`). Its own near copies (within the
model's copy threshold, `cbir.retrieval.copies.default_threshold`; byte-identical copies are one image row
already) are left out, so a photo filed twice cannot vouch for itself. The others vote for their categories
with weight = similarity ** POWER (cosine similarity 1 - d; 1 - d / bits for hash models; 1 / (1 + d) for
Euclidean ones); unlabelled neighbours do not vote.

- score: the weighted share of the votes that is not the image's own category (0: all neighbours agree, 1:
  none do): a similarity-weighted kNN estimate of P(label is wrong). Unlabelled images get 0.
- suggested: the category with the largest weighted share among the other categories (the neighbours'
  weighted majority once its own folder is set aside), with that share as `support`.
- uniqueness: the distance to its K-th nearest neighbour, copies included (a photo with copies is not unique).
- representativeness: cosine similarity of its vector (bits as +-1) to the mean of the other vectors of its
  category (leave-one-out centroid, so small categories are not flattered by the image itself); NULL without
  a category or when it is alone in it.

benchmarks/suspects.py measures the ranking on Caltech-101 with 5% of the images moved to wrong folders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir.analysis.evaluate import category_codes
from cbir.distances import COSINE, HAMMING
from cbir.errors import BadArgument, NotEnoughImages
from cbir.retrieval.copies import default_threshold
from cbir.storage import collection, db, staleness
from cbir.storage import suspects as stored
from cbir.storage.models import Model, resolve_model
from cbir.storage.neighbours import neighbours_of_stored

DEFAULT_K = 10
POWER = 4  # sharpens the weights: the nearest neighbours count most (benchmarks/suspects.py, docs/suspects.md)
SPARE = 10  # extra neighbours fetched per image, so that leaving out near copies still leaves K
BLOCK = 256  # images per lateral-join statement (one progress step)
METHOD = f"HNSW k-NN vote, weights similarity^{POWER}, near copies left out; centroid cosine"


@dataclass
class Report:
    """What `cbir suspects` shows: the run (computed now or reused), and its top images."""

    run: stored.SuspectRun
    reused: bool
    rows: list[stored.Scored]
    places: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # neighbour id -> (path, category)

    def evidence(self, row: stored.Scored, limit: int = 3) -> list[dict[str, Any]]:
        """The neighbours that voted for the suggestion, nearest first."""
        found = [
            {"id": n, "path": self.places[n][0], "category": self.places[n][1], "distance": d}
            for n, d in zip(row.neighbours, row.distances, strict=True)
            if n in self.places and row.suggested is not None and self.places[n][1] == row.suggested
        ]
        return found[:limit]

    def as_dict(self) -> dict[str, Any]:
        run = {key: getattr(self.run, key) for key in ("id", "model", "k", "images", "method", "seconds")}
        run["created_at"] = self.run.created_at.isoformat()
        rows = [r.as_dict() | {"evidence": self.evidence(r)} for r in self.rows]
        return {"run": run, "reused": self.reused, "suspects": rows}


def similarities(distances: np.ndarray, metric: str, dim: int) -> np.ndarray:
    """Distances as similarities in [0, 1] (what a neighbour's vote is weighted by, before POWER)."""
    if metric == COSINE:
        return np.clip(1 - distances, 0, 1)
    if metric == HAMMING:
        return np.clip(1 - distances / dim, 0, 1)
    return 1 / (1 + distances)


def vote(labels: np.ndarray, neighbour_labels: np.ndarray, weights: np.ndarray, n_categories: int) -> tuple:
    """(score, suggested code or -1, support) per row from its neighbours' labels (-1: unlabelled) and weights.

    Rows of neighbour_labels/weights are padded with label -1, weight 0 where an image has fewer neighbours.
    """
    n = len(labels)
    votes = np.zeros((n, n_categories + 1))
    np.add.at(votes, (np.repeat(np.arange(n), neighbour_labels.shape[1]), neighbour_labels.ravel()), weights.ravel())
    votes = votes[:, :n_categories]  # the -1 column (unlabelled neighbours) is dropped
    total = votes.sum(axis=1)
    shares = np.divide(votes, total[:, None], out=np.zeros_like(votes), where=total[:, None] > 0)
    labelled = labels >= 0
    own = np.where(labelled, shares[np.arange(n), np.maximum(labels, 0)], 1.0)
    others = shares.copy()
    others[np.flatnonzero(labelled), labels[labelled]] = -1
    suggested = others.argmax(axis=1)
    support = np.maximum(others[np.arange(n), suggested], 0)
    suggested = np.where(support > 0, suggested, -1)
    return np.where(total > 0, 1 - own, 0.0), suggested, support


def representativeness(labels: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """Cosine similarity of each vector to the mean of the other vectors of its category (NaN: none)."""
    unit = vectors.astype(np.float32) * 2 - 1 if metric == HAMMING else vectors.astype(np.float32)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    result = np.full(len(labels), np.nan)
    for code in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == code)
        if len(rows) < 2:
            continue
        others = unit[rows].sum(axis=0)[None, :] - unit[rows]  # leave-one-out sums
        norms = np.maximum(np.linalg.norm(others, axis=1), 1e-12)
        result[rows] = (unit[rows] * others).sum(axis=1) / norms
    return result


def _neighbours(
    conn: psycopg.Connection, model: Model, ids: np.ndarray, k: int, progress: bool
) -> dict[int, list[tuple[int, float]]]:
    found: dict[int, list[tuple[int, float]]] = {}
    blocks = range(0, len(ids), BLOCK)
    with tqdm(total=len(ids), desc="suspects", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in blocks:
            block = [int(i) for i in ids[start : start + BLOCK]]
            found |= neighbours_of_stored(conn, model, block, k + SPARE)
            bar.update(len(block))
    return found


def score_model(conn: psycopg.Connection, model: Model, k: int = DEFAULT_K, progress: bool = True) -> int:
    """Score every image the model embedded, store the run, and return its id."""
    if k < 1:
        raise BadArgument("--k must be at least 1")
    start = time.perf_counter()
    generation = staleness.generation(conn)  # before reading: a change made meanwhile shows as stale
    ids, categories, vectors = collection.model_vectors(conn, model)
    if len(ids) <= k:
        raise NotEnoughImages(f"suspects need more than k={k} images; model {model.name!r} has {len(ids)}")
    labels, names = category_codes(categories)
    if not (labels >= 0).any():
        raise NotEnoughImages("no image has a category: ingest folders of images with --label folder")
    found = _neighbours(conn, model, ids, k, progress)
    row_of = {int(i): r for r, i in enumerate(ids)}
    threshold = default_threshold(model.name)
    voters = np.full((len(ids), k), -1, dtype=np.int64)
    voter_d = np.zeros((len(ids), k))
    unique = np.zeros(len(ids))
    for r, image_id in enumerate(ids):
        hits = found[int(image_id)]
        unique[r] = hits[min(k, len(hits)) - 1][1] if hits else np.nan
        kept = [(n, d) for n, d in hits if d > threshold and n in row_of][:k]
        voters[r, : len(kept)] = [row_of[n] for n, _ in kept]
        voter_d[r, : len(kept)] = [d for _, d in kept]
    present = voters >= 0
    weights = np.where(present, similarities(voter_d, model.metric, model.dim) ** POWER, 0.0)
    neighbour_labels = np.where(present, labels[np.maximum(voters, 0)], -1)
    score, suggested, support = vote(labels, neighbour_labels, weights, len(names))
    typical = representativeness(labels, vectors, model.metric)
    rows = (
        (
            int(ids[r]),
            categories[r],
            names[suggested[r]] if suggested[r] >= 0 else None,
            float(score[r]),
            float(support[r]),
            float(unique[r]),
            None if np.isnan(typical[r]) else float(typical[r]),
            [int(ids[v]) for v in voters[r] if v >= 0],
            [float(d) for v, d in zip(voters[r], voter_d[r], strict=True) if v >= 0],
        )
        for r in range(len(ids))
    )
    seconds = round(time.perf_counter() - start, 2)
    return stored.save_run(conn, model, k, METHOD, seconds, generation, rows)


def fresh_run(conn: psycopg.Connection, model: Model, k: int) -> stored.SuspectRun | None:
    """The model's newest stored run with this k, unless the collection changed since it was made."""
    run = stored.latest_run(conn, model)
    if run is None or run.k != k or staleness.stale_suspects(conn, run.id) is not None:
        return None
    return run


def suspects(
    model: str | None = None,
    top: int = 20,
    k: int = DEFAULT_K,
    recompute: bool = False,
    order: str = "score",
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> Report:
    """The `top` most suspect images of a model (or by another ORDERS key), reusing a fresh stored run."""
    if top < 1:
        raise BadArgument("--top must be at least 1")
    if order not in stored.ORDERS:
        raise BadArgument(f"--sort must be one of {', '.join(stored.ORDERS)}, not {order!r}")
    with db.connection(conn) as c:
        chosen = resolve_model(c, model)
        run = None if recompute else fresh_run(c, chosen, k)
        reused = run is not None
        if run is None:
            score_model(c, chosen, k, progress)
            run = stored.latest_run(c, chosen)
            assert run is not None
        rows = stored.ranked(c, run.id, top, order)
        places = stored.places(c, {n for r in rows for n in r.neighbours})
        return Report(run, reused, rows, places)
