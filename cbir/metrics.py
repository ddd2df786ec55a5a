"""Retrieval metrics on ranked relevance: precision@k, AP@k and full-ranking AP, vectorised over queries.

Input is a boolean matrix `relevant[q, r]`: whether the r-th ranked result of query q is relevant (same
category). Definitions (stated because variants exist):
- precision@k = relevant results in the first k / k (k results are always asked for).
- AP@k = sum over ranks r <= k of precision@r at relevant ranks, divided by min(R, k), where R is the number
  of relevant items in the whole collection for that query (so a perfect top k scores 1).
- AP (full ranking) = the same sum over every rank, divided by R; equal to scikit-learn's
  average_precision_score when scores have no ties.
"""

from __future__ import annotations

import numpy as np


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
