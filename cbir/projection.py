"""2-D UMAP maps of a model's embeddings for the Map page: fit, score, store, and place new queries on them.

As in the second seed document: UMAP with 2 components and min_dist 0.0, and n_neighbors chosen by
scikit-learn's trustworthiness over a grid (`auto`); every score is stored so the Map page can draw the
trustworthiness-vs-k curve. Fitting runs from `cbir project` (or the Map page's explicit button), never on
page load. `umap` (and numba) are imported inside functions only: the import alone costs ~20 s.
"""

from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir import store
from cbir.config import CbirError
from cbir.search import resolve_model

GRID = (5, 10, 15, 30, 50, 100)  # n_neighbors tried by `auto` (those below the number of images)
MIN_DIST = 0.0
MIN_IMAGES = 4
SCORE_SAMPLE = 2000  # trustworthiness needs all pairwise distances: score a fixed random sample of points
SCORE_K = 5  # the neighbourhood trustworthiness checks (scikit-learn's default)
SEED = 42


@dataclass
class Projection:
    id: int
    model: str
    n_neighbors: int
    min_dist: float
    metric: str
    images: int
    seconds: float
    params: dict[str, Any]
    created_at: datetime
    scores: dict[int, float] = field(default_factory=dict)  # n_neighbors -> trustworthiness


@dataclass
class MapPoints:
    """Every stored image's place on a map, with what the hover text and the selection need."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    categories: list[str | None]
    paths: list[str]

    @cached_property
    def position(self) -> dict[int, int]:
        """Row of each image id."""
        return {int(i): n for n, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def parse_neighbors(value: str | int) -> int | str:
    """'auto' or a whole number of neighbours (a clear error for anything else)."""
    if isinstance(value, int) or value == "auto":
        return value
    if not value.isdigit():
        raise CbirError(f"--n-neighbors must be 'auto' or a whole number, got {value!r}")
    return int(value)


def candidates(images: int, n_neighbors: int | str) -> list[int]:
    if images < MIN_IMAGES:
        raise CbirError(f"a map needs at least {MIN_IMAGES} images with embeddings, found {images}")
    if n_neighbors == "auto":
        return [k for k in GRID if k < images] or [images - 1]
    if not 2 <= int(n_neighbors) < images:
        raise CbirError(
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


def trustworthiness(vectors: np.ndarray, coords: np.ndarray, sample: np.ndarray, metric: str) -> float:
    """scikit-learn's trustworthiness of the map over `sample` rows (1 = every map neighbour is a true one)."""
    from sklearn.manifold import trustworthiness as score

    k = max(1, min(SCORE_K, len(sample) // 2 - 1))
    return float(score(vectors[sample], coords[sample], n_neighbors=k, metric=metric))


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
    ids, _, vectors = store.model_vectors(conn, model_row)
    grid = candidates(len(ids), n_neighbors)
    metric = "hamming" if model_row.kind == "bit" else "euclidean"  # unit vectors: same ranking as cosine
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(ids), size=min(len(ids), SCORE_SAMPLE), replace=False))
    scores: dict[int, float] = {}
    best: tuple[float, int, Any] | None = None
    for k in tqdm(grid, desc="UMAP n_neighbors", unit="fit", disable=not progress):
        reducer = fit(vectors, k, metric, seed)
        scores[k] = trustworthiness(vectors, reducer.embedding_, sample, metric)
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
    projection_id = _store(conn, model_row, ids, best[2], params, time.perf_counter() - start, scores)
    result = latest(conn, model_row.name)
    assert result is not None and result.id == projection_id
    return result


def _store(
    conn: psycopg.Connection,
    model: store.Model,
    ids: np.ndarray,
    reducer: Any,
    params: dict[str, Any],
    seconds: float,
    scores: dict[int, float],
) -> int:
    """Replace the model's map in one transaction: a reader sees the old map or the new one, whole."""
    coords = np.asarray(reducer.embedding_, dtype=np.float32)
    blob = pickle.dumps(reducer, protocol=pickle.HIGHEST_PROTOCOL)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM projections WHERE model_id = %s", (model.id,))
        projection_id = cur.execute(
            "INSERT INTO projections (model_id, n_neighbors, min_dist, metric, images, seconds, params)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                model.id,
                params["n_neighbors"],
                MIN_DIST,
                params["metric"],
                len(ids),
                seconds,
                psycopg.types.json.Jsonb(params),
            ),
        ).fetchone()[0]
        with cur.copy("COPY projection_points (projection_id, image_id, x, y) FROM STDIN") as copy:
            for image_id, (x, y) in zip(ids.tolist(), coords.tolist(), strict=True):
                copy.write_row((projection_id, image_id, x, y))
        cur.executemany(
            "INSERT INTO projection_scores (projection_id, n_neighbors, trustworthiness) VALUES (%s, %s, %s)",
            [(projection_id, k, s) for k, s in scores.items()],
        )
        cur.execute("INSERT INTO projection_reducers (projection_id, reducer) VALUES (%s, %s)", (projection_id, blob))
    return projection_id


def latest(conn: psycopg.Connection, model: str) -> Projection | None:
    """The stored map of a model (by stored name), with its trustworthiness scores; None before `cbir project`."""
    row = conn.execute(
        "SELECT p.id, m.name, p.n_neighbors, p.min_dist, p.metric, p.images, p.seconds, p.params, p.created_at"
        " FROM projections p JOIN models m ON m.id = p.model_id WHERE m.name = %s",
        (model,),
    ).fetchone()
    if row is None:
        return None
    projection = Projection(*row)
    rows = conn.execute(
        "SELECT n_neighbors, trustworthiness FROM projection_scores WHERE projection_id = %s ORDER BY n_neighbors",
        (projection.id,),
    )
    projection.scores = {k: s for k, s in rows}
    return projection


def points(conn: psycopg.Connection, projection_id: int) -> MapPoints:
    rows = conn.execute(
        "SELECT p.image_id, p.x, p.y, i.category, i.path FROM projection_points p JOIN images i ON i.id = p.image_id"
        " WHERE p.projection_id = %s ORDER BY p.image_id",
        (projection_id,),
    ).fetchall()
    return MapPoints(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        x=np.array([r[1] for r in rows], dtype=np.float32),
        y=np.array([r[2] for r in rows], dtype=np.float32),
        categories=[r[3] for r in rows],
        paths=[r[4] for r in rows],
    )


def load_reducer(conn: psycopg.Connection, projection_id: int) -> Any:
    """The fitted UMAP of a stored map (unpickling imports umap: slow the first time in a process)."""
    row = conn.execute("SELECT reducer FROM projection_reducers WHERE projection_id = %s", (projection_id,)).fetchone()
    if row is None:
        raise CbirError(f"map {projection_id} has no stored reducer; run cbir project again")
    return pickle.loads(row[0])


def place(reducer: Any, vector: np.ndarray) -> tuple[float, float]:
    """Where a new vector (e.g. an uploaded query) falls on the fitted map."""
    x, y = reducer.transform(np.asarray(vector)[None, :])[0]
    return float(x), float(y)
