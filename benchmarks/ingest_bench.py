"""End-to-end ingest and upload-to-results speed, each as a ratio to the model alone, in one run.

1. Model only: the embedder's forward pass over already-prepared batches of the first --model-images
   files (the ceiling for ingest).
2. End to end: `cbir.ingest.ingest` on >= 1,000 Caltech-101 files into a fresh embedded database
   (discover, read, hash, decode, preprocess, thumbnail, embed, batched writes).
3. A naive per-image loop like the first seed's upload script: open, preprocess, forward one image,
   INSERT one row and commit, on a subset.
   Load on a shared machine drifts by 3x within minutes, so the files are ingested in --segments parts and
   each part is bracketed by model-only runs and followed by a slice of the naive loop; the ratios are
   medians over segments.
4. Upload-to-results round trip (`cbir.search.search` on the bytes of an image not in the collection:
   decode, embed, HNSW query) against a single-image forward pass, p50 of each.

The model is a randomly initialised dinov2-small (exact architecture, same cost as the genuine weights);
files are read in place from ../shared/datasets/caltech101.

    python benchmarks/ingest_bench.py                 # 1,000 images
    python benchmarks/ingest_bench.py --quick         # smoke run (tiny model, 24 images)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALTECH = ROOT.parent / "shared" / "datasets" / "caltech101"


def caltech_files(n: int, skip: int = 0) -> list[Path]:
    """n files spread over all categories (round-robin over sorted folders), after the first `skip` rounds."""
    folders = sorted(p for p in CALTECH.iterdir() if p.is_dir())
    lists = [sorted(f for f in folder.iterdir() if f.is_file()) for folder in folders]
    picked: list[Path] = []
    depth = skip
    while len(picked) < n and any(depth < len(x) for x in lists):
        picked += [x[depth] for x in lists if depth < len(x)]
        depth += 1
    return picked[:n]


def model_only_rate(embedder, prepared: list) -> float:
    start = time.perf_counter()
    count = sum(len(embedder.forward(p)) for p in prepared)
    return count / (time.perf_counter() - start)


def naive_loop(embedder, conn, files: list[Path], create: bool) -> float:
    """The seed's upload script shape: one image at a time, one INSERT and commit per image."""
    from PIL import Image

    if create:
        conn.execute("CREATE TABLE naive_upload (path text PRIMARY KEY, embedding vector)")
    start = time.perf_counter()
    for path in files:
        image = Image.open(path).convert("RGB")
        vector = embedder.forward(embedder.prepare([image]))[0]
        conn.execute("INSERT INTO naive_upload VALUES (%s, %s)", (str(path), vector))  # autocommit: one commit
    return len(files) / (time.perf_counter() - start)


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def round_trip(embedder, conn, files: list[Path]) -> tuple[float, float]:
    """(upload-to-results p50 ms, single-image forward p50 ms), alternating so both see the same load."""
    from PIL import Image

    from cbir.retrieval.search import search

    trips, forwards = [], []
    search(files[0].read_bytes(), k=10, model=embedder.name, conn=conn)  # warm
    for path in files:
        data = path.read_bytes()  # the bytes an upload hands over
        start = time.perf_counter()
        hits = search(data, k=10, model=embedder.name, conn=conn)
        trips.append(time.perf_counter() - start)
        assert len(hits) == 10
        prepared = embedder.prepare([Image.open(path).convert("RGB")])
        start = time.perf_counter()
        embedder.forward(prepared)
        forwards.append(time.perf_counter() - start)
    return p50_ms(trips), p50_ms(forwards)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--model-images", type=int, default=96, help="images timed for each model-only rate")
    p.add_argument("--naive-images", type=int, default=100)
    p.add_argument("--queries", type=int, default=25)
    p.add_argument("--size", default="small", help="random DINOv2 architecture (tiny, small, base)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--segments", type=int, default=5, help="ingest in this many parts, each between model-only runs")
    p.add_argument("--quick", action="store_true", help="tiny model, 24 images (smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.model_images, args.naive_images, args.queries, args.segments = 24, 16, 4, 3, 2
        args.size, args.batch_size = "tiny", 8
    tmp = Path(tempfile.mkdtemp(prefix="cbir-ingest-bench-", dir="/tmp"))
    os.environ["CBIR_HOME"] = str(tmp / "home")
    os.environ.pop("CBIR_DATABASE_URL", None)
    from PIL import Image

    from cbir.embedders import get_embedder
    from cbir.embedders.random_model import save_random_dinov2
    from cbir.indexing.ingest import ingest
    from cbir.retrieval.search import search  # noqa: F401  (imported now: the whole run uses one version of cbir)
    from cbir.storage import db

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)
    try:
        model_dir = str(save_random_dinov2(tmp / f"dinov2-{args.size}", size=args.size).resolve())
        embedder = get_embedder(model_dir)  # loaded once; ingest and search get this same instance
        files = caltech_files(args.images)
        sample = files[: args.model_images]
        start, prepared = time.perf_counter(), []
        for i in range(0, len(sample), args.batch_size):
            images = [Image.open(f).convert("RGB") for f in sample[i : i + args.batch_size]]
            prepared.append(embedder.prepare(images))
        decode_rate = len(sample) / (time.perf_counter() - start)  # one thread; for scaling estimates
        conn = db.connect()
        rows, embedded, skipped = [], 0, 0
        step = -(-len(files) // args.segments)
        naive_files = files[: args.naive_images]
        naive_step = -(-len(naive_files) // args.segments)
        for seg in range(args.segments):
            # Interleaved, so each ratio compares rates measured within a minute of each other.
            part = files[seg * step : (seg + 1) * step]
            before = model_only_rate(embedder, prepared)
            start = time.perf_counter()
            report = ingest(
                part, model_dir, batch_size=args.batch_size, workers=args.workers, conn=conn, progress=False
            )
            e2e = len(part) / (time.perf_counter() - start)
            after = model_only_rate(embedder, prepared)
            naive = naive_loop(embedder, conn, naive_files[seg * naive_step : (seg + 1) * naive_step], seg == 0)
            embedded, skipped = embedded + report.embedded, skipped + len(report.skipped)
            rows.append({"model": (before + after) / 2, "e2e": e2e, "naive": naive})
            print(
                f"segment {seg}: model only {before:.2f} / {after:.2f}, end to end {e2e:.2f}, naive {naive:.2f} "
                f"images/s; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        assert embedded == len(files) - skipped
        trip, forward = round_trip(embedder, conn, caltech_files(args.queries, skip=40))
        conn.close()
    finally:
        db.stop_embedded()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end {os.getloadavg()}")
    ratio = statistics.median(r["e2e"] / r["model"] for r in rows)
    naive_ratio = statistics.median(r["e2e"] / r["naive"] for r in rows)
    print(
        f"\ndinov2-{args.size} (random weights), {len(files)} Caltech-101 files ({embedded} embedded, "
        f"{skipped} skipped) in {args.segments} segments, batch {args.batch_size}"
    )
    print("| measure | value |\n|---|---:|")
    for key, label in (("model", "model only"), ("e2e", "end-to-end ingest"), ("naive", "naive per-image loop")):
        print(f"| {label}, images/s per segment | {' / '.join(f'{r[key]:.2f}' for r in rows)} |")
    print(f"| decode + preprocess only (one thread), images/s | {decode_rate:.1f} |")
    print(f"| **end-to-end / model only**, median over segments (goal >= 0.9) | **{ratio:.3f}** |")
    print(f"| **end-to-end / naive loop**, median over segments | **{naive_ratio:.2f}x** |")
    print(f"| upload-to-results p50 ms / single-image forward p50 ms | {trip:.1f} / {forward:.1f} |")
    print(f"| **round trip / forward** (goal <= 1.3) | **{trip / forward:.3f}** |")


if __name__ == "__main__":
    main()
