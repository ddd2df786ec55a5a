"""UMAP fit time for the Map page's projection, with and without numba's one-off compilation.

Each size runs in a fresh Python process (numba caches compiled code per process): it times `import umap`,
a first fit (compilation included) and a second fit of the same points (compilation excluded). Points
are synthetic clustered 384-d unit vectors (the shape of dinov2-small embeddings; fit cost depends on
count, dimension and neighbourhood structure, not on what the vectors mean). Settings follow the product:
2 components, min_dist 0.0, cosine metric.

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
import time

import numpy as np


def clustered(n: int, dim: int = 384, clusters: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def worker(n: int, n_neighbors: int, n_epochs: int | None) -> dict:
    """Runs inside a fresh process: import, first fit, second fit."""
    start = time.perf_counter()
    import umap

    imported = time.perf_counter() - start
    x = clustered(n)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        umap.UMAP(n_components=2, min_dist=0.0, n_neighbors=n_neighbors, metric="cosine", n_epochs=n_epochs).fit(x)
        times.append(time.perf_counter() - start)
    return {"points": n, "import_s": imported, "first_fit_s": times[0], "second_fit_s": times[1]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="9000,30000")
    p.add_argument("--n-neighbors", type=int, default=15)
    p.add_argument("--n-epochs", type=int, help="UMAP's n_epochs (default: UMAP's own choice)")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n_neighbors, args.n_epochs)))
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--worker", str(n), "--n-neighbors", str(args.n_neighbors)]
        cmd += ["--n-epochs", str(args.n_epochs)] if args.n_epochs else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    print(f"load average at end {os.getloadavg()}")
    print("\n| points | import umap s | first fit s (compile included) | second fit s (excluded) | first / second |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['points']:,} | {r['import_s']:.1f} | {r['first_fit_s']:.1f} | {r['second_fit_s']:.1f} "
            f"| {r['first_fit_s'] / r['second_fit_s']:.2f} |"
        )
    if len(rows) > 1:
        print(
            f"\nsecond-fit time ratio {rows[-1]['points']:,} / {rows[0]['points']:,} points: "
            f"{rows[-1]['second_fit_s'] / rows[0]['second_fit_s']:.2f}"
        )


if __name__ == "__main__":
    main()
