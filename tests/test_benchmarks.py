"""Each benchmark script runs end to end with its smallest settings, so none of them rots.

These are smoke runs, not timings: their numbers are meaningless and nothing here asserts on speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


def run_bench(script: str, *args: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_search_bench_smoke(tmp_path: Path) -> None:
    out = run_bench(
        "search_bench.py",
        *("--sizes", "2000", "--queries", "20", "--exact-queries", "3", "--ef", "10,40", "--categories", "10"),
        *("--home", str(tmp_path / "home"), "--json", str(tmp_path / "r.json")),
    )
    assert "| 2,000 | vector | 40 |" in out and "| 2,000 | halfvec | 40 |" in out
    assert "relaxed_order" in out and (tmp_path / "r.json").exists()


def test_embed_bench_smoke() -> None:
    out = run_bench("embed_bench.py", "--quick")
    assert "| dinov2-tiny | sdpa attention |" in out
    assert "| int8 | 20 |" in out and "| bfloat16 | 20 |" in out
    assert "| dinov2-tiny | OpenVINO float32 | sdpa attention |" in out  # the runtime beside PyTorch
    assert "| dinov2-tiny | OpenVINO, empty cache | openvino | 1 |" in out  # converts once ...
    assert "| dinov2-tiny | OpenVINO, cached | openvino | 0 |" in out  # ... and a second process reads the cache
    assert "| openvino | float32 | 20 |" in out


def test_embed_bench_efficientnet_beside_dinov2() -> None:
    # Both kinds of model in one run and one table; a variant with no meaning for a CNN is skipped, not an error.
    out = run_bench(
        "embed_bench.py",
        *("--sizes", "tiny,efficientnet-lite0", "--variants", "eager,sdpa,bf16", "--batches", "2"),
        *("--seconds", "0.1", "--pairs", "1", "--agreement-images", "0", "--no-load-times", "--no-policies"),
    )
    assert "efficientnet-lite0: 0.768 GFLOP per 224x224 image (0.384 GMAC)" in out
    assert "| dinov2-tiny | sdpa attention |" in out and "| efficientnet-lite0 | float32 eager |" in out
    assert "| efficientnet-lite0 | bf16 autocast |" in out and "skipped: efficientnet-lite0 sdpa" in out
    assert "top-10 overlap" not in out  # --agreement-images 0 skips the agreement runs


def test_ingest_bench_smoke() -> None:
    out = run_bench("ingest_bench.py", "--quick")
    assert "end-to-end / model only" in out and "round trip / forward" in out
    assert "| measure | torch | openvino |" in out and "openvino / torch end-to-end ingest rate" in out


def test_umap_fit_smoke() -> None:
    # JIT off: numba compilation alone takes a minute; the script's logic is what is checked here.
    out = run_bench("umap_fit.py", "--sizes", "60", "--n-epochs", "5", NUMBA_DISABLE_JIT="1")
    assert "| 60 |" in out


def test_delete_bench_smoke(tmp_path: Path) -> None:
    args = ("--size", "1500", "--queries", "10", "--ef", "40", "--cascade-size", "2000")
    out = run_bench("delete_bench.py", *args, "--home", str(tmp_path / "home"))
    assert "| half removed, before VACUUM |" in out and "| after VACUUM |" in out
    assert "| after REINDEX CONCURRENTLY |" in out and "removing 750 images" in out
    assert "removing 1,000 of 2,000 images named by a stored evaluation run" in out


def test_map_placement_smoke() -> None:
    # JIT off, as above; a synthetic set only (the stored-map part needs a CBIR_HOME with a fitted map).
    args = ("--synthetic", "240", "--sample-synthetic", "80", "--n-neighbors", "5")
    out = run_bench("map_placement.py", *args, NUMBA_DISABLE_JIT="1")
    assert "| synthetic 384-d, 240 | 240 | 240 | 0 |" in out and "| synthetic 384-d, 240 | 240 | 80 | 160 |" in out


def test_dashboard_bench_smoke(tmp_path: Path) -> None:
    # A real server and Chromium on a small synthetic collection: every row of the report is printed.
    args = ("--synthetic", "600", "--synthetic-root", str(tmp_path), "--repeats", "1", "--uploads", "2", "-k", "3")
    out = run_bench("dashboard.py", *args)
    assert "| images on the map | 600 |" in out
    for row in ("Map page ready, new session (s", "Box selection -> thumbnails shown", "Map after an upload, first in"):
        assert row in out
