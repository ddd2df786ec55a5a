"""Retrieval metrics on ranked relevance: precision@k, AP@k and full-ranking AP, vectorised over queries.

Input is a boolean matrix `relevant[q, r]`: whether the r-th ranked result of query q is relevant (same
category). Definitions (stated because variants exist):
- precision@k = relevant results in the first k / k (k results are always asked for).
- AP@k = sum over ranks r <= k of precision@r at relevant ranks, divided by min(R, k), where R is the number
  of relevant items in the whole collection for that query (so a perfect top k scores 1).
- AP (full ranking) = the same sum over every rank, divided by R; equal to scikit-learn's
  average_precision_score when scores have no ties.
Also the trustworthiness of a 2-D map (maps and pixels-umap score their fits with it).
"""

from __future__ import annotations

import numpy as np

from cbir.distances import sklearn_metric

SCORE_SAMPLE = 2000  # trustworthiness needs all pairwise distances: score a fixed random sample of points
SCORE_K = 5  # the neighbourhood trustworthiness checks (scikit-learn's default)


def precision_at_k(relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-query precision of the first k results."""
    _check(relevant, k)
    return relevant[:, :k].sum(axis=1) / k


def average_precision(relevant: np.ndarray, n_relevant: np.ndarray | None = None, k: int | None = None) -> np.ndarray:
    """Per-query AP@k (k given) or full-ranking AP (k None).

    n_relevant: relevant items per query in the whole collection; defaults to the count in `relevant`,
    which is right only when `relevant` covers the full ranking. Queries with none score 0.
    """
    if k is not None:
        _check(relevant, k)
    n_relevant = relevant.sum(axis=1) if n_relevant is None else np.asarray(n_relevant)
    top = relevant[:, :k] if k is not None else relevant
    hits = np.cumsum(top, axis=1)
    precision = hits / np.arange(1, top.shape[1] + 1)
    total = (precision * top).sum(axis=1)
    denominator = np.minimum(n_relevant, k) if k is not None else n_relevant
    return np.divide(total, denominator, out=np.zeros(len(total)), where=denominator > 0)


def _check(relevant: np.ndarray, k: int) -> None:
    if relevant.ndim != 2:
        raise ValueError("relevant must be a (queries, ranks) matrix")
    if k < 1 or k > relevant.shape[1]:
        raise ValueError(f"k must be between 1 and {relevant.shape[1]}, got {k}")


def trustworthiness(vectors: np.ndarray, coords: np.ndarray, sample: np.ndarray, metric: str) -> float:
    """scikit-learn's trustworthiness of `coords` over `sample` rows (1 = every map neighbour is a true one).

    metric: a cbir metric name (cosine, l2, hamming) of `vectors`.
    """
    from sklearn.manifold import trustworthiness as score

    k = max(1, min(SCORE_K, len(sample) // 2 - 1))
    return float(score(vectors[sample], coords[sample], n_neighbors=k, metric=sklearn_metric(metric)))


def score_sample(n: int, seed: int) -> np.ndarray:
    """The seeded, sorted rows a trustworthiness score is computed on."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, SCORE_SAMPLE), replace=False))
