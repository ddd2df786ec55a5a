"""Leave-one-out retrieval evaluation on a labelled collection (categories from folders), stored in the DB.

Every labelled image (or a seeded sample of N) is a query against all other images the model embedded; a
result is relevant when it has the query's category. Neighbours come from an exact in-memory ranking: the
stored vectors are loaded once and each block of queries is ranked against all of them with a numpy matrix
product (cosine, Euclidean, or Hamming via +-1 products for bit strings). For Caltech-101 (9,145 images)
that takes seconds, is exact rather than approximate, and is far faster than 9,145 HNSW queries, which
would also need their full rankings for full-ranking AP. Ties (Hamming distances are integers) are broken
in a seeded random order (columns shuffled before sorting), not by id, so no category is favoured by the
order it was ingested in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir.distances import distance_block
from cbir.errors import BadArgument, NotEnoughImages
from cbir.metrics import average_precision, precision_at_k
from cbir.storage import collection, db, evaluations, staleness
from cbir.storage.models import Model, resolve_model

METHOD = "exact in-memory ranking (numpy), ties in seeded random order"
PRECISION_AT = (1, 5, 10)
BLOCK = 256  # queries ranked at once: a (256, N) distance matrix


def metric_keys(k: int) -> list[str]:
    return [f"precision@{n}" for n in PRECISION_AT] + [f"mAP@{k}", "mAP"]


@dataclass
class Ranking:
    """Per-query results of a leave-one-out run (rows follow `queries`)."""

    queries: np.ndarray  # row index into the collection of each query
    scores: np.ndarray  # (q, 5) metrics in metric_keys order
    neighbours: np.ndarray  # (q, k) row indexes of the top-k results
    distances: np.ndarray  # (q, k)


def rank_leave_one_out(
    labels: np.ndarray,
    vectors: np.ndarray,
    metric: str,
    k: int,
    queries: np.ndarray,
    seed: int = 0,
    progress: bool = False,
) -> Ranking:
    """Rank all other images for each query row; labels are category codes, -1 for unlabelled images."""
    n = len(labels)
    if n - 1 < max(k, *PRECISION_AT):
        raise NotEnoughImages(f"evaluation needs more than {max(k, *PRECISION_AT)} images; the model has {n}")
    sizes = np.bincount(labels[labels >= 0], minlength=labels.max() + 1)
    rng = np.random.default_rng(seed)
    scores, neighbours, distances = [], [], []
    for start in tqdm(range(0, len(queries), BLOCK), desc="eval", disable=not progress, dynamic_ncols=True):
        rows = queries[start : start + BLOCK]
        d = distance_block(vectors[rows], vectors, metric).astype(np.float32)
        d[np.arange(len(rows)), rows] = np.inf  # the query itself ranks last and is dropped
        shuffle = rng.permutation(n)  # ties fall in this random order, not in id (= ingest) order
        order = shuffle[np.argsort(d[:, shuffle], axis=1)][:, :-1]
        relevant = labels[order] == labels[rows][:, None]
        n_relevant = sizes[labels[rows]] - 1
        block = [precision_at_k(relevant, p) for p in PRECISION_AT]
        block += [average_precision(relevant, n_relevant, k=k), average_precision(relevant, n_relevant)]
        scores.append(np.stack(block, axis=1))
        neighbours.append(order[:, :k])
        distances.append(np.take_along_axis(d, order[:, :k], axis=1))
    return Ranking(queries, np.concatenate(scores), np.concatenate(neighbours), np.concatenate(distances))


def confusions(labels: np.ndarray, ranking: Ranking, names: list[str]) -> list[dict[str, Any]]:
    """Category pairs (A, B): how many top-k neighbours of A's queries are in B, most first."""
    n_cat, k = len(names), ranking.neighbours.shape[1]
    query_labels = labels[ranking.queries]
    neighbour_labels = labels[ranking.neighbours]
    counts = np.zeros((n_cat, n_cat), dtype=np.int64)
    touched = np.zeros((n_cat, n_cat), dtype=np.int64)
    for a in np.unique(query_labels):
        rows = neighbour_labels[query_labels == a]
        counts[a] += np.bincount(rows[rows >= 0], minlength=n_cat)
        for row in rows:
            touched[a, np.unique(row[row >= 0])] += 1
    n_queries = np.bincount(query_labels, minlength=n_cat)
    share = np.bincount(labels[labels >= 0], minlength=n_cat) / (len(labels) - 1)
    pairs = []
    for a, b in zip(*np.nonzero(counts), strict=True):
        if a == b:
            continue
        rate = counts[a, b] / (n_queries[a] * k)
        pairs.append(
            {
                "category": names[a],
                "other": names[b],
                "neighbours": int(counts[a, b]),
                "queries": int(touched[a, b]),
                "rate": float(rate),
                "lift": float(rate / share[b]),
            }
        )
    pairs.sort(key=lambda p: (-p["neighbours"], -p["rate"], p["category"], p["other"]))
    return pairs


def summarise(labels: np.ndarray, ranking: Ranking, names: list[str], k: int) -> dict[str, Any]:
    """Overall (mean over queries), macro (mean over categories) and per-category metrics."""
    keys = metric_keys(k)
    query_labels = labels[ranking.queries]
    sizes = np.bincount(labels[labels >= 0], minlength=len(names))
    per_category = []
    for code in np.unique(query_labels):
        mean = ranking.scores[query_labels == code].mean(axis=0)
        row = {"category": names[code], "images": int(sizes[code]), "queries": int((query_labels == code).sum())}
        per_category.append(row | {key: float(v) for key, v in zip(keys, mean, strict=True)})
    macro = np.mean([[c[key] for key in keys] for c in per_category], axis=0)
    return {
        "overall": {key: float(v) for key, v in zip(keys, ranking.scores.mean(axis=0), strict=True)},
        "macro": {key: float(v) for key, v in zip(keys, macro, strict=True)},
        "categories": per_category,
    }


def neighbour_rows(ids: np.ndarray, ranking: Ranking) -> Iterator[tuple[int, int, int, float]]:
    """(query image id, rank, neighbour image id, distance) for every query's top-k, as stored."""
    for row, neighbours, distances in zip(ranking.queries, ranking.neighbours, ranking.distances, strict=True):
        for rank, (other, distance) in enumerate(zip(neighbours, distances, strict=True), 1):
            yield int(ids[row]), rank, int(ids[other]), float(distance)


def category_codes(categories: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Category names as integer codes (sorted names; -1 for images without a category), and the names."""
    names = sorted({c for c in categories if c is not None})
    code = {name: i for i, name in enumerate(names)}
    return np.array([code.get(c, -1) if c is not None else -1 for c in categories], dtype=np.int64), names


def _query_rows(labels: np.ndarray, sample: int | None, seed: int) -> np.ndarray:
    """Labelled images whose category has at least one other image, or a seeded sample of them."""
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    eligible = np.flatnonzero((labels >= 0) & (sizes[np.maximum(labels, 0)] >= 2))
    if len(eligible) == 0:
        raise NotEnoughImages("no labelled images to evaluate: ingest folders of images with --label folder")
    if sample is not None:
        if sample < 1:
            raise BadArgument("--queries must be at least 1")
        if sample < len(eligible):
            eligible = np.sort(np.random.default_rng(seed).choice(eligible, sample, replace=False))
    return eligible


def evaluate_model(
    conn: psycopg.Connection,
    model: Model,
    k: int = 10,
    sample: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run leave-one-out evaluation of one stored model, store it, and return the report."""
    if k < 1:
        raise BadArgument("--k must be at least 1")
    start = time.perf_counter()
    generation = staleness.generation(conn)  # before the vectors: a change made meanwhile shows as stale
    ids, categories, vectors = collection.model_vectors(conn, model)
    labels, names = category_codes(categories)
    queries = _query_rows(labels, sample, seed)
    ranking = rank_leave_one_out(labels, vectors, model.metric, k, queries, seed, progress)
    report = {"model": model.name, "k": k, "queries": len(queries), "images": len(ids), "method": METHOD}
    report |= summarise(labels, ranking, names, k)
    pairs = confusions(labels, ranking, names)
    report["seconds"] = round(time.perf_counter() - start, 2)
    rows = neighbour_rows(ids, ranking)
    report["run_id"] = evaluations.save_run(conn, model, report, metric_keys(k), pairs, rows, sample, seed, generation)
    report["confusions"] = pairs
    return report


def evaluate(
    models: list[str] | None = None,
    k: int = 10,
    sample: int | None = None,
    seed: int = 0,
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> list[dict[str, Any]]:
    """Evaluate each named model (default: the model search would use) and store the runs."""
    with db.connection(conn) as c:
        rows = [resolve_model(c, name) for name in (models or [None])]
        return [evaluate_model(c, m, k, sample, seed, progress) for m in rows]
