"""Placing images on a UMAP map without UMAP, measured: queries at the weighted mean of their neighbours'
points beside `reducer.transform`, and a fit on a sample (the rest placed that way) beside a full fit.

Part 1, placement (a stored map, read only): held-back stored images are placed as a search would place them
as queries, from their 10 nearest *other* images (exact cosine), and by the stored reducer's `transform` (in
a fresh process, so its first call pays umap's import and numba's compilation as the dashboard did). For
each: the distance to the image's own fitted point, relative to the map's spread (RMS distance of all
points from their centroid), and "neighbourhood kept": the share of its 10 true nearest images (vectors)
among the 10 map points nearest to where it was put (for its own fitted point too, UMAP's own ceiling).
`transform` sees the image itself among its training points, which favours it.

Part 2, sample fit: UMAP on every image vs on a seeded sample with the others placed by their PLACE_K nearest
sampled images (cbir.analysis.projection, what `cbir project` does past CBIR_MAP_SAMPLE), on the real
vectors of --home and on synthetic clustered 384-d unit vectors (--synthetic N): fit time (after one warm-up
fit, so numba's compilation is not counted) and trustworthiness over the same 2,000 images.

    python benchmarks/map_placement.py --home /tmp/eval-home --model efficientnet-lite0 --synthetic 30000
    python benchmarks/map_placement.py --home H --model M --held 50 --sample-real 40 --synthetic 0  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
K = 10


def clustered(n: int, dim: int = 384, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """Synthetic embeddings: unit vectors around `clusters` random centres (as benchmarks/umap_fit.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def stored(model: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(vectors, map points, projection id) of the model's stored map, rows in image id order."""
    from cbir.storage import collection, db, projections
    from cbir.storage.models import resolve_model

    with db.connect() as conn:
        row = resolve_model(conn, model)
        current = projections.latest(conn, row.name)
        if current is None:
            raise SystemExit(f"no stored map for {row.name}: run cbir project first")
        ids, _, vectors = collection.model_vectors(conn, row)
        points = projections.points(conn, current.id)
    assert np.array_equal(ids, points.ids), "the map does not cover exactly the embedded images; refit it"
    return vectors, np.column_stack([points.x, points.y]), current.id


def kept(xy: np.ndarray, where: np.ndarray, true_neighbours: np.ndarray, itself: np.ndarray) -> float:
    """Mean share of each image's true neighbours among the K map points nearest to where it was put."""
    shares = []
    for n, (p, truth) in enumerate(zip(where, true_neighbours, strict=True)):
        d = ((xy - p) ** 2).sum(1)
        d[itself[n]] = np.inf
        shares.append(len(set(np.argpartition(d, K)[:K].tolist()) & set(truth.tolist())) / K)
    return float(np.mean(shares))


def transform_worker(model: str, rows: list[int]) -> dict:
    """In a fresh process: unpickle the stored reducer and transform the held-back vectors (first call timed)."""
    from cbir.storage import db, projections

    vectors, _, projection_id = stored(model)
    start = time.perf_counter()
    with db.connect() as conn:
        reducer = projections.load_reducer(conn, projection_id)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    first = reducer.transform(vectors[rows[:1]])
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    rest = reducer.transform(vectors[rows[1:]])
    rest_s = time.perf_counter() - start
    xy = np.vstack([first, rest])
    return {"load_s": loaded, "first_s": first_s, "per_query_s": rest_s / max(1, len(rows) - 1), "xy": xy.tolist()}


def placement(model: str, held: int, seed: int) -> dict:
    from cbir.analysis import projection
    from cbir.distances import distance_block

    vectors, xy, _ = stored(model)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=held, replace=False))
    d = distance_block(vectors[rows], vectors, "cosine")
    d[np.arange(held), rows] = np.inf  # a stored query is left out of its own results
    neighbours = np.argsort(d, axis=1)[:, :K]
    start = time.perf_counter()
    placed = projection.weighted_positions(xy[neighbours], np.take_along_axis(d, neighbours, axis=1))
    weighted_s = (time.perf_counter() - start) / held
    cmd = [sys.executable, __file__, "--worker", model, "--rows", ",".join(map(str, rows.tolist()))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ).stdout
    umap_result = json.loads(out.strip().splitlines()[-1])
    transformed = np.array(umap_result["xy"])
    spread = float(np.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean()))

    def error(where: np.ndarray) -> np.ndarray:
        return np.sqrt(((where - xy[rows]) ** 2).sum(1)) / spread

    return {
        "images": len(vectors),
        "held": held,
        "spread": spread,
        "weighted": {"error": error(placed), "kept": kept(xy, placed, neighbours, rows), "per_query_s": weighted_s},
        "transform": {"error": error(transformed), "kept": kept(xy, transformed, neighbours, rows), **umap_result},
        "own": kept(xy, xy[rows], neighbours, rows),
    }


def sample_fit(vectors: np.ndarray, sample: int, metric: str, n_neighbors: int, seed: int) -> dict:
    """Fit on all vectors (sample >= len) or on a sample with the rest placed; time and trustworthiness."""
    from cbir.analysis import projection
    from cbir.distances import sklearn_metric
    from cbir.metrics import score_sample, trustworthiness

    start = time.perf_counter()
    fitted = projection.fitted_rows(len(vectors), sample, seed)
    reducer = projection.fit(vectors[fitted], n_neighbors, sklearn_metric(metric), seed)
    fit_s = time.perf_counter() - start
    coords = np.zeros((len(vectors), 2), dtype=np.float32)
    coords[fitted] = reducer.embedding_
    others = np.setdiff1d(np.arange(len(vectors)), fitted)
    start = time.perf_counter()
    if len(others):
        neighbours, distances = projection.nearest_fitted(vectors[fitted], vectors[others], metric, seed)
        coords[others] = projection.weighted_positions(reducer.embedding_[neighbours], distances)
    place_s = time.perf_counter() - start
    score = trustworthiness(vectors, coords, score_sample(len(vectors), seed), metric)
    return {"fitted": len(fitted), "placed": len(others), "fit_s": fit_s, "place_s": place_s, "trust": score}


def describe(errors: np.ndarray) -> str:
    return f"{np.median(errors):.3f} | {np.percentile(errors, 90):.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="CBIR_HOME with a stored map (read only)")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--held", type=int, default=300, help="held-back stored images placed as queries")
    parser.add_argument("--sample-real", type=int, default=3000, help="sample fitted on --home's vectors")
    parser.add_argument("--synthetic", type=int, default=30000, help="synthetic vectors for part 2 (0: none)")
    parser.add_argument("--sample-synthetic", type=int, default=10000)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.home:
        os.environ["CBIR_HOME"] = str(args.home.resolve())
    if args.worker:
        print(json.dumps(transform_worker(args.worker, [int(r) for r in args.rows.split(",")])))
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)

    if args.home:
        p = placement(args.model, args.held, args.seed)
        w, t = p["weighted"], p["transform"]
        print(f"\n## Placing queries on the stored map of {p['images']:,} images ({args.model})\n")
        print(f"{p['held']} held-back stored images placed as queries; map spread (RMS radius) {p['spread']:.2f}.\n")
        print("| method | error / spread, median | p90 | neighbourhood kept | time per query (s) |")
        print("|---|---:|---:|---:|---:|")
        print(f"| weighted mean of 10 neighbours | {describe(w['error'])} | {w['kept']:.3f} | {w['per_query_s']:.2e} |")
        print(f"| reducer.transform | {describe(t['error'])} | {t['kept']:.3f} | {t['per_query_s']:.3f} |")
        print(f"| (the image's own fitted point) | 0 | 0 | {p['own']:.3f} | - |")
        print(
            f"\nreducer.transform, fresh process: unpickling {t['load_s']:.1f} s, first call {t['first_s']:.1f} s"
            f" (umap's import and numba's compilation), then {t['per_query_s']:.3f} s per query.",
            flush=True,
        )

    print("\n## UMAP on every image vs on a sample (the rest placed by their neighbours)\n", flush=True)
    sets = []
    if args.home:
        sets.append((f"{args.model} (real)", stored(args.model)[0], args.sample_real, "cosine"))
    if args.synthetic:
        sets.append(
            (f"synthetic 384-d, {args.synthetic:,}", clustered(args.synthetic), args.sample_synthetic, "cosine")
        )
    rows = []
    for name, vectors, sample, metric in sets:
        sample_fit(vectors[: min(len(vectors), 500)], 10**9, metric, args.n_neighbors, args.seed)  # numba warm-up
        for size in (len(vectors), sample):
            r = sample_fit(vectors, size, metric, args.n_neighbors, args.seed)
            rows.append((name, r))
            print(f"{name}: {r}", flush=True)
    print(f"\nload average at end {os.getloadavg()}\n")
    print("| vectors | images | fitted | placed | fit (s) | placement (s) | trustworthiness |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        images = r["fitted"] + r["placed"]
        print(
            f"| {name} | {images:,} | {r['fitted']:,} | {r['placed']:,} | {r['fit_s']:.1f} | {r['place_s']:.1f} |"
            f" {r['trust']:.4f} |"
        )


if __name__ == "__main__":
    main()
