"""2-D UMAP maps of a model's embeddings for the Map page: fit, score, store, and place new queries on them.

As in the second seed document: UMAP with 2 components and min_dist 0.0, and n_neighbors chosen by
scikit-learn's trustworthiness over a grid (`auto`); every score is stored so the Map page can draw the
trustworthiness-vs-k curve. Fitting runs from `cbir project` (or the Map page's explicit button), never on
page load. `umap` (and numba) are imported inside functions only: the import alone costs ~20 s.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir.distances import sklearn_metric
from cbir.errors import BadArgument, NotEnoughImages
from cbir.metrics import SCORE_K, score_sample, trustworthiness
from cbir.storage import collection, projections
from cbir.storage.models import resolve_model
from cbir.storage.projections import Projection

GRID = (5, 10, 15, 30, 50, 100)  # n_neighbors tried by `auto` (those below the number of images)
MIN_DIST = 0.0
MIN_IMAGES = 4
SEED = 42


def parse_neighbors(value: str | int) -> int | str:
    """'auto' or a whole number of neighbours (a clear error for anything else)."""
    if isinstance(value, int) or value == "auto":
        return value
    if not value.isdigit():
        raise BadArgument(f"--n-neighbors must be 'auto' or a whole number, got {value!r}")
    return int(value)


def candidates(images: int, n_neighbors: int | str) -> list[int]:
    if images < MIN_IMAGES:
        raise NotEnoughImages(f"a map needs at least {MIN_IMAGES} images with embeddings, found {images}")
    if n_neighbors == "auto":
        return [k for k in GRID if k < images] or [images - 1]
    if not 2 <= int(n_neighbors) < images:
        raise BadArgument(
            f"--n-neighbors must be between 2 and {images - 1} (one less than the images), got {n_neighbors}"
        )
    return [int(n_neighbors)]


def fit(vectors: np.ndarray, n_neighbors: int, metric: str, seed: int = SEED) -> Any:
    """A fitted umap.UMAP (2 components, min_dist 0)."""
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=MIN_DIST, metric=metric, random_state=seed)
    with warnings.catch_warnings():  # a fixed seed makes UMAP single-threaded, and it warns about that
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        warnings.filterwarnings("ignore", message="gradient function is not yet", category=UserWarning)  # hamming
        return reducer.fit(vectors)


def project(
    conn: psycopg.Connection,
    model: str | None = None,
    n_neighbors: int | str = "auto",
    seed: int = SEED,
    progress: bool = True,
) -> Projection:
    """Fit the map of a model's embeddings (trying each n_neighbors of `auto`), store it, replace the old one."""
    start = time.perf_counter()
    model_row = resolve_model(conn, model)
    ids, _, vectors = collection.model_vectors(conn, model_row)
    grid = candidates(len(ids), n_neighbors)
    metric = sklearn_metric(model_row.metric)  # unit vectors: Euclidean ranks them as cosine does
    sample = score_sample(len(ids), seed)
    scores: dict[int, float] = {}
    best: tuple[float, int, Any] | None = None
    for k in tqdm(grid, desc="UMAP n_neighbors", unit="fit", disable=not progress):
        reducer = fit(vectors, k, metric, seed)
        scores[k] = trustworthiness(vectors, reducer.embedding_, sample, model_row.metric)
        if best is None or scores[k] > best[0]:
            best = (scores[k], k, reducer)
    assert best is not None
    params = {
        "n_components": 2,
        "n_neighbors": best[1],
        "min_dist": MIN_DIST,
        "metric": metric,
        "random_state": seed,
        "grid": grid,
        "trustworthiness": {"n_neighbors": SCORE_K, "sample": len(sample), "metric": metric},
    }
    projection_id = projections.save(conn, model_row, ids, best[2], params, time.perf_counter() - start, scores)
    result = projections.latest(conn, model_row.name)
    assert result is not None and result.id == projection_id
    return result


def place(reducer: Any, vector: np.ndarray) -> tuple[float, float]:
    """Where a new vector (e.g. an uploaded query) falls on the fitted map."""
    x, y = reducer.transform(np.asarray(vector)[None, :])[0]
    return float(x), float(y)
