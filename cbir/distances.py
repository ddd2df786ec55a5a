"""The distance rule, written once: which metric a model's vectors use, and exact distances in numpy.

- bit strings (phash): Hamming distance, in bits;
- unit vectors (neural models): cosine distance, 0 (same direction) to 2;
- 'l2' vectors (pixels-umap's UMAP coordinates): Euclidean distance.
The storage layer maps the same names to pgvector's operators; evaluation, copies and maps use these.
"""

from __future__ import annotations

import numpy as np

COSINE, L2, HAMMING = "cosine", "l2", "hamming"
METRICS = (COSINE, L2, HAMMING)


def metric_for(kind: str, declared: str | None = None) -> str:
    """A model's metric from its kind ('vector' or 'bit') and the metric it declares (vectors only)."""
    if kind == "bit":
        return HAMMING
    return declared if declared in (COSINE, L2) else COSINE


def sklearn_metric(metric: str) -> str:
    """The name scikit-learn and UMAP use: Euclidean ranks unit vectors exactly as cosine does."""
    return "hamming" if metric == HAMMING else "euclidean"


def distance_block(queries: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """Distances from each query row to every stored row, as the search operators define them."""
    if metric == HAMMING:
        signs_q = queries.astype(np.float32) * 2 - 1
        signs_v = vectors.astype(np.float32) * 2 - 1
        return (vectors.shape[1] - signs_q @ signs_v.T) / 2
    if metric == L2:
        squared = (queries**2).sum(1)[:, None] + (vectors**2).sum(1)[None, :] - 2 * queries @ vectors.T
        return np.sqrt(np.maximum(squared, 0))
    unit_q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    unit_v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return 1 - unit_q @ unit_v.T
