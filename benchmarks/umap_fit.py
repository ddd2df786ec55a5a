"""UMAP fit time for the Map page's projection, with and without numba's one-off compilation.

numba compiles UMAP's and pynndescent's kernels on first use and keeps them in an on-disk cache, so a fit
costs differently the very first time (cold cache), in a later process (warm disk cache) and again in the
same process (everything compiled). For each size, in fresh Python processes with their own empty
NUMBA_CACHE_DIR: process 1 times `import umap`, a cold first fit and a second fit; process 2 (same cache
dir) times a first fit with the disk cache warm.

Points are synthetic clustered 384-d unit vectors (the shape of dinov2-small embeddings; fit cost
depends on count, dimension and neighbourhood structure, not on what the vectors mean). Settings follow
the product: 2 components, min_dist 0.0, cosine metric.

    python benchmarks/umap_fit.py                      # 9,000 and 30,000 points
    NUMBA_DISABLE_JIT=1 python benchmarks/umap_fit.py --sizes 60 --n-epochs 5   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def clustered(n: int, dim: int = 384, clusters: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def worker(n: int, fits: int, n_neighbors: int, n_epochs: int | None) -> dict:
    """Runs inside a fresh process: import, then `fits` fits of the same points."""
    start = time.perf_counter()
    import umap

    imported = time.perf_counter() - start
    x = clustered(n)
    times = []
    for _ in range(fits):
        start = time.perf_counter()
        umap.UMAP(n_components=2, min_dist=0.0, n_neighbors=n_neighbors, metric="cosine", n_epochs=n_epochs).fit(x)
        times.append(time.perf_counter() - start)
    return {"import_s": imported, "fits_s": times}


def run_worker(n: int, fits: int, args: argparse.Namespace, cache_dir: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n), "--fits", str(fits), "--n-neighbors", str(args.n_neighbors)]
    cmd += ["--n-epochs", str(args.n_epochs)] if args.n_epochs else []
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="9000,30000")
    p.add_argument("--n-neighbors", type=int, default=15)
    p.add_argument("--n-epochs", type=int, help="UMAP's n_epochs (default: UMAP's own choice)")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fits", type=int, default=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.fits, args.n_neighbors, args.n_epochs)))
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
            cold = run_worker(n, 2, args, cache)
            warm = run_worker(n, 1, args, cache)
        rows.append(
            {
                "points": n,
                "cold import": cold["import_s"],
                "cold first fit": cold["fits_s"][0],
                "warm-cache import": warm["import_s"],
                "warm-cache first fit": warm["fits_s"][0],
                "compiled fit": cold["fits_s"][1],
            }
        )
        print(rows[-1], flush=True)
    print(f"load average at end {os.getloadavg()}")
    keys = list(rows[0])
    print("\n(seconds)\n| " + " | ".join(keys) + " | cold first fit / compiled fit |")
    print("|" + "---:|" * (len(keys) + 1))
    for r in rows:
        cells = [f"{r['points']:,}"] + [f"{r[k]:.1f}" for k in keys[1:]]
        print("| " + " | ".join(cells) + f" | {r['cold first fit'] / r['compiled fit']:.2f} |")
    if len(rows) > 1:
        ratio = rows[-1]["compiled fit"] / rows[0]["compiled fit"]
        print(f"\ncompiled-fit time ratio {rows[-1]['points']:,} / {rows[0]['points']:,} points: {ratio:.2f}")


if __name__ == "__main__":
    main()
