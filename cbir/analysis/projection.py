"""2-D UMAP maps of a model's embeddings for the Map page: fit, score, store, and place new queries on them.

As in the second seed document: UMAP with 2 components and min_dist 0.0, and n_neighbors chosen by
scikit-learn's trustworthiness over a grid (`auto`); every score is stored so the Map page can draw the
trustworthiness-vs-k curve. Fitting runs from `cbir project` (or the Map page's explicit button), never on
page load. `umap` (and numba) are imported inside functions only: the import alone costs ~20 s.

A query is placed without UMAP, at the inverse-distance-weighted mean of its nearest stored images' points
(`place_by_neighbours`): instant, where `reducer.transform` first compiles numba's kernels (benchmarks/
map_placement.py compares them). Past CBIR_MAP_SAMPLE images UMAP is fitted on a sample and every other image
is placed the same way.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir.config import settings
from cbir.distances import COSINE, HAMMING, L2, distance_block, sklearn_metric
from cbir.errors import BadArgument, NotEnoughImages
from cbir.metrics import SCORE_K, score_sample, trustworthiness
from cbir.storage import collection, projections, staleness
from cbir.storage.models import resolve_model
from cbir.storage.neighbours import Hit
from cbir.storage.projections import MapPoints, Projection

GRID = (5, 10, 15, 30, 50, 100)  # n_neighbors tried by `auto` (those below the number of images)
MIN_DIST = 0.0
MIN_IMAGES = 4
SEED = 42
PLACE_K = 10  # a query (or an image outside the fitted sample) sits at the weighted mean of this many neighbours
EXACT_PAIRS = 500_000_000  # placing the images outside a fitted sample: exact neighbours up to this many pairs
BLOCK = 1024
PLACE_METRICS = {COSINE: "cosine", L2: "euclidean", HAMMING: "hamming"}  # cbir metric -> pynndescent's name


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


def fitted_rows(images: int, limit: int, seed: int = SEED) -> np.ndarray:
    """The rows UMAP is fitted on: all of them, or a seeded random sample of `limit` (CBIR_MAP_SAMPLE)."""
    if images <= limit:
        return np.arange(images)
    return np.sort(np.random.default_rng(seed).choice(images, size=limit, replace=False))


def weighted_positions(xy: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Inverse-distance-weighted means: (..., k, 2) neighbour positions, (..., k) distances -> (..., 2).

    A neighbour at distance 0 (the same picture) takes the point to itself.
    """
    weights = 1.0 / np.maximum(np.asarray(distances, dtype=np.float64), 1e-9)
    return (np.asarray(xy, dtype=np.float64) * weights[..., None]).sum(-2) / weights.sum(-1)[..., None]


def place_by_neighbours(points: MapPoints, hits: Sequence[Hit]) -> tuple[float, float]:
    """Where a query falls on a map, from the map positions of its nearest stored images (no UMAP involved).

    `hits` are the query's neighbours as a search found them (nearest first); those not on this map (added
    since it was fitted) are skipped.
    """
    rows = points.rows([h.id for h in hits[:PLACE_K]])
    known = rows >= 0
    if not known.any():
        raise NotEnoughImages("none of the query's nearest images is on this map yet; refit it (cbir project)")
    xy = np.column_stack([points.x[rows[known]], points.y[rows[known]]])
    x, y = weighted_positions(xy, np.array([h.distance for h in hits[:PLACE_K]])[known])
    return float(x), float(y)


def nearest_fitted(fitted: np.ndarray, others: np.ndarray, metric: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The PLACE_K nearest fitted rows of each other row, and their distances (the search's metric).

    Exact, in blocks, while that stays within EXACT_PAIRS distances; beyond, pynndescent (UMAP's own
    approximate neighbour search), as a million images against a 50k sample would take hours exactly.
    """
    k = min(PLACE_K, len(fitted))
    if len(fitted) * len(others) > EXACT_PAIRS:
        from pynndescent import NNDescent

        graph = min(30, len(fitted) - 1)  # pynndescent's default degree, less for a small sample
        index = NNDescent(fitted, metric=PLACE_METRICS[metric], n_neighbors=graph, random_state=seed, n_jobs=1)
        return index.query(others, k=k)
    rows, dists = [], []
    for start in range(0, len(others), BLOCK):
        d = distance_block(others[start : start + BLOCK], fitted, metric)
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k] if k < len(fitted) else np.tile(np.arange(k), (len(d), 1))
        rows.append(nearest)
        dists.append(np.take_along_axis(d, nearest, axis=1))
    return np.concatenate(rows), np.concatenate(dists)


def project(
    conn: psycopg.Connection,
    model: str | None = None,
    n_neighbors: int | str = "auto",
    seed: int = SEED,
    progress: bool = True,
    sample: int | None = None,
) -> Projection:
    """Fit the map of a model's embeddings (trying each n_neighbors of `auto`), store it, replace the old one.

    Past `sample` images (default CBIR_MAP_SAMPLE) UMAP is fitted on a seeded sample and every other image is
    placed as a query is, at the weighted mean of its nearest sampled images: a fit of a million images would
    take hours here, the placement takes minutes.
    """
    start = time.perf_counter()
    model_row = resolve_model(conn, model)
    generation = staleness.generation(conn)  # before the vectors: a change made meanwhile shows as stale
    ids, _, vectors = collection.model_vectors(conn, model_row)
    fitted = fitted_rows(len(ids), settings().map_sample if sample is None else sample, seed)
    grid = candidates(len(fitted), n_neighbors)
    metric = sklearn_metric(model_row.metric)  # unit vectors: Euclidean ranks them as cosine does
    others = np.setdiff1d(np.arange(len(ids)), fitted)
    if len(others):
        neighbours, distances = nearest_fitted(vectors[fitted], vectors[others], model_row.metric, seed)
    scored = score_sample(len(ids), seed)
    scores: dict[int, float] = {}
    best: tuple[float, int, Any, np.ndarray] | None = None
    for k in tqdm(grid, desc="UMAP n_neighbors", unit="fit", disable=not progress):
        reducer = fit(vectors[fitted], k, metric, seed)
        coords = np.zeros((len(ids), 2), dtype=np.float32)
        coords[fitted] = reducer.embedding_
        if len(others):
            coords[others] = weighted_positions(reducer.embedding_[neighbours], distances)
        scores[k] = trustworthiness(vectors, coords, scored, model_row.metric)
        if best is None or scores[k] > best[0]:
            best = (scores[k], k, reducer, coords)
    assert best is not None
    params = {
        "n_components": 2,
        "n_neighbors": best[1],
        "min_dist": MIN_DIST,
        "metric": metric,
        "random_state": seed,
        "grid": grid,
        "trustworthiness": {"n_neighbors": SCORE_K, "sample": len(scored), "metric": metric},
        "fitted": len(fitted),  # images UMAP saw; the others were placed by their PLACE_K nearest of those
        "placed": len(others),
        "place_k": PLACE_K,
    }
    seconds = time.perf_counter() - start
    projection_id = projections.save(conn, model_row, ids, best[2], params, seconds, scores, generation, coords=best[3])
    result = projections.latest(conn, model_row.name)
    assert result is not None and result.id == projection_id
    return result


def place(reducer: Any, vector: np.ndarray) -> tuple[float, float]:
    """Where a new vector falls by the fitted UMAP's own transform (slow: the comparison for place_by_neighbours)."""
    x, y = reducer.transform(np.asarray(vector)[None, :])[0]
    return float(x), float(y)
