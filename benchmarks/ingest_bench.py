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
files are read in place from ../shared/datasets/caltech101. Each CBIR_RUNTIME in --runtimes (default PyTorch and
OpenVINO) gets its own copy of the same weights (so its own model and rows in the database) and runs every step
above; in each segment the runtimes take turns, so their ratios and their end-to-end rates compare like for like.

    python benchmarks/ingest_bench.py                 # 1,000 images
    python benchmarks/ingest_bench.py --quick         # smoke run (tiny model, 24 images)

--ray instead compares, in one run, the local ingest with `cbir ingest --ray` (cbir.indexing.ray_ingest) on the
same files and the same machine: a one-node Ray cluster (`ray start --head`, all cores) is started and timed, then
the files are ingested in two halves, local / Ray / Ray / local (so a steady drift of the machine's load weighs on
both alike; each half's image rows are written by whichever comes first, so both pay for that once), each with its
own copy of the same random weights. Ray / local over whole runs, each Ray run's fixed start included (its workers
start and load the model), is the engine's overhead on one machine (goal >= 0.8). The two models' vectors are
checked equal, and one writer's rate (rows/s through write_batch) is measured for sizing. Ray probes
the network, so on a machine that must not use it, run it in a loopback-only namespace (as root):

    unshare -n bash -c 'ip link set lo up && python benchmarks/ingest_bench.py --ray --images 600'
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


def naive_loop(embedder, conn, files: list[Path], table: str, create: bool) -> float:
    """The seed's upload script shape: one image at a time, one INSERT and commit per image."""
    from PIL import Image
    from psycopg import sql

    if create:
        conn.execute(sql.SQL("CREATE TABLE {} (path text PRIMARY KEY, embedding vector)").format(sql.Identifier(table)))
    insert = sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(sql.Identifier(table))
    start = time.perf_counter()
    for path in files:
        image = Image.open(path).convert("RGB")
        vector = embedder.forward(embedder.prepare([image]))[0]
        conn.execute(insert, (str(path), vector))  # autocommit: one commit
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
    p.add_argument("--runtimes", default="torch,openvino", help="CBIR_RUNTIME values, interleaved in each segment")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--segments", type=int, default=5, help="ingest in this many parts, each between model-only runs")
    p.add_argument("--quick", action="store_true", help="tiny model, 24 images (smoke run)")
    p.add_argument("--ray", action="store_true", help="local ingest vs the Ray ingest on a one-node cluster")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.model_images, args.naive_images, args.queries, args.segments = 24, 16, 4, 3, 2
        args.size, args.batch_size = "tiny", 8
    if args.ray:
        ray_comparison(args)
        return
    runtimes = args.runtimes.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="cbir-ingest-bench-", dir="/tmp"))
    os.environ["CBIR_HOME"] = str(tmp / "home")
    os.environ["CBIR_CACHE"] = str(tmp / "cache")  # OpenVINO converts once in this run
    os.environ.pop("CBIR_DATABASE_URL", None)
    from cbir.storage import db, embedded

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)
    try:
        files = caltech_files(args.images)
        runs = {runtime: Run.load(runtime, args, tmp, files) for runtime in runtimes}
        conn = db.connect()
        step = -(-len(files) // args.segments)
        naive_files = files[: args.naive_images]
        naive_step = -(-len(naive_files) // args.segments)
        for seg in range(args.segments):
            for run in runs.values():  # interleaved: both runtimes see the same minute's load
                run.segment(
                    conn, seg, files[seg * step : (seg + 1) * step], naive_files[seg * naive_step :][:naive_step]
                )
        for run in runs.values():
            assert run.embedded == len(files) - run.skipped
            run.trip, run.forward = round_trip(run.embedder, conn, caltech_files(args.queries, skip=40))
        conn.close()
    finally:
        embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end {os.getloadavg()}")
    report(args, files, list(runs.values()))


class Run:
    """One runtime's embedder (its own copy of the same random weights, so each is its own model in the database)
    and its per-segment rates."""

    def __init__(self, runtime: str, args: argparse.Namespace, embedder, prepared: list, decode_rate: float) -> None:
        self.runtime, self.args, self.embedder, self.prepared = runtime, args, embedder, prepared
        self.decode_rate, self.rows, self.embedded, self.skipped = decode_rate, [], 0, 0
        self.trip = self.forward = 0.0

    @classmethod
    def load(cls, runtime: str, args: argparse.Namespace, tmp: Path, files: list[Path]) -> Run:
        from PIL import Image

        from cbir.embedders import get_embedder
        from cbir.embedders.random_model import save_random_dinov2

        path = save_random_dinov2(tmp / f"dinov2-{args.size}-{runtime}", size=args.size)  # seed 0: same weights
        os.environ["CBIR_RUNTIME"] = runtime
        embedder = get_embedder(str(path.resolve()))  # loaded once; ingest and search get this same instance
        assert embedder.info()["runtime"] == runtime, f"asked for {runtime}, got {embedder.info()['runtime']}"
        sample = files[: args.model_images]
        start, prepared = time.perf_counter(), []
        for i in range(0, len(sample), args.batch_size):
            images = [Image.open(f).convert("RGB") for f in sample[i : i + args.batch_size]]
            prepared.append(embedder.prepare(images))
        decode_rate = len(sample) / (time.perf_counter() - start)  # one thread; for scaling estimates
        return cls(runtime, args, embedder, prepared, decode_rate)

    def segment(self, conn, seg: int, part: list[Path], naive_files: list[Path]) -> None:
        from cbir.indexing.ingest import ingest

        before = model_only_rate(self.embedder, self.prepared)
        start = time.perf_counter()
        batch, workers = self.args.batch_size, self.args.workers
        done = ingest(part, self.embedder.name, batch_size=batch, workers=workers, conn=conn, progress=False)
        e2e = len(part) / (time.perf_counter() - start)
        after = model_only_rate(self.embedder, self.prepared)
        naive = naive_loop(self.embedder, conn, naive_files, f"naive_{self.runtime}", seg == 0)
        self.embedded, self.skipped = self.embedded + done.embedded, self.skipped + len(done.skipped)
        self.rows.append({"model": (before + after) / 2, "e2e": e2e, "naive": naive})
        print(
            f"segment {seg} {self.runtime}: model only {before:.2f} / {after:.2f}, end to end {e2e:.2f}, "
            f"naive {naive:.2f} images/s; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    def median(self, key: str, over: str) -> float:
        return statistics.median(r[key] / r[over] for r in self.rows)


def report(args: argparse.Namespace, files: list[Path], runs: list[Run]) -> None:
    first = runs[0]
    print(
        f"\ndinov2-{args.size} (random weights), {len(files)} Caltech-101 files ({first.embedded} embedded, "
        f"{first.skipped} skipped, per runtime) in {args.segments} segments, batch {args.batch_size}, "
        f"{args.workers} decode workers"
    )
    print("| measure | " + " | ".join(r.runtime for r in runs) + " |\n|---|" + "---:|" * len(runs))

    def line(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(r) for r in runs) + " |")

    for key, label in (("model", "model only"), ("e2e", "end-to-end ingest"), ("naive", "naive per-image loop")):
        line(f"{label}, images/s per segment", lambda r, k=key: " / ".join(f"{x[k]:.2f}" for x in r.rows))
    line("decode + preprocess only (one thread), images/s", lambda r: f"{r.decode_rate:.1f}")
    line(
        "**end-to-end / model only**, median over segments (goal >= 0.9)",
        lambda r: f"**{r.median('e2e', 'model'):.3f}**",
    )
    line("**end-to-end / naive loop**, median over segments", lambda r: f"**{r.median('e2e', 'naive'):.2f}x**")
    line("upload-to-results p50 ms / single-image forward p50 ms", lambda r: f"{r.trip:.1f} / {r.forward:.1f}")
    line("**round trip / forward** (goal <= 1.3)", lambda r: f"**{r.trip / r.forward:.3f}**")
    for run in runs[1:]:
        speed = statistics.median(b["e2e"] / a["e2e"] for a, b in zip(first.rows, run.rows, strict=True))
        print(f"\n{run.runtime} / {first.runtime} end-to-end ingest rate, median over segments: {speed:.2f}x")


def start_ray_head(temp_dir: Path) -> tuple[str, int, float]:
    """`ray start --head` on loopback with all cores, in a session of its own (its processes are found by their
    process group, never by name); (address, process group, seconds to start)."""
    import re
    import subprocess
    import sys

    ray = str(Path(sys.executable).with_name("ray"))
    command = [ray, "start", "--head", "--port", "0", "--num-cpus", str(os.cpu_count()), "--node-ip-address"]
    command += ["127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp_dir)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    out, _ = proc.communicate(timeout=300)
    seconds = time.perf_counter() - start
    match = re.search(r"--address='([^']+)'", out)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"ray start failed:\n{out}")
    return match.group(1), proc.pid, seconds


def stop_ray_head(group: int) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        time.sleep(wait)


def write_rate(conn, dim: int, thumbnail: bytes, batches: int = 20, batch: int = 32) -> float:
    """Rows per second one writer stores through cbir.storage.collection.write_batch (one transaction per batch,
    images + embeddings + paths), for sizing writers per model actor."""
    import numpy as np

    from cbir.storage import collection
    from cbir.storage.collection import NewImage
    from cbir.storage.models import ensure_model

    model = ensure_model(conn, "write-rate", "vector", dim, "cosine", {})
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for b in range(batches):
        rows = [
            NewImage(f"{b:08d}{i:056d}", f"/write-rate/{b}/{i}.jpg", "w", 300, 200, "JPEG", 30_000, thumbnail)
            for i in range(batch)
        ]
        vectors = rng.standard_normal((batch, dim)).astype(np.float32)
        collection.write_batch(conn, model, rows, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), [])
    return batches * batch / (time.perf_counter() - start)


def ray_comparison(args: argparse.Namespace) -> None:
    """Local ingest vs Ray ingest of the same files on this machine, in one run (see the module docstring)."""
    import secrets

    import numpy as np
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="cbir-ingest-bench-ray-", dir="/tmp"))
    os.environ |= {"CBIR_HOME": str(tmp / "home"), "CBIR_CACHE": str(tmp / "cache"), "RAY_USAGE_STATS_ENABLED": "0"}
    os.environ |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # as a real cluster should
    os.environ.pop("CBIR_DATABASE_URL", None)
    from cbir.embedders import get_embedder
    from cbir.embedders.random_model import save_random_dinov2
    from cbir.images import thumbnail_jpeg
    from cbir.indexing import ray_ingest
    from cbir.indexing.ingest import ingest
    from cbir.storage import collection, db, embedded
    from cbir.storage.models import get_model

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()} nproc {os.cpu_count()}")
    print(f"load average {os.getloadavg()}", flush=True)
    files = caltech_files(args.images)
    parts = [files[: len(files) // 2], files[len(files) // 2 :]]
    group = None
    seconds, done = {"local": 0.0, "ray": 0.0}, {"local": 0, "ray": 0}
    startup = []  # each Ray run's seconds until its first batch was stored
    try:
        names = {}
        for how in ("local", "ray"):  # seed 0: the same weights under two names, so two models in one database
            names[how] = str(save_random_dinov2(tmp / f"dinov2-{args.size}-{how}", size=args.size).resolve())
            embedder = get_embedder(names[how])  # loaded before timing, as both ingests find it loaded
        sample = [Image.open(f).convert("RGB") for f in files[: args.model_images]]
        start = time.perf_counter()
        prepared = [embedder.prepare(sample[i : i + args.batch_size]) for i in range(0, len(sample), args.batch_size)]
        decode_rate = len(sample) / (time.perf_counter() - start)
        model_rate = model_only_rate(embedder, prepared)
        address, group, cluster_seconds = start_ray_head(tmp / "ray")
        print(f"ray start --head: {cluster_seconds:.1f}s, address {address}", flush=True)
        conn = db.connect()
        for how, half in (("local", 0), ("ray", 0), ("ray", 1), ("local", 1)):
            start = time.perf_counter()
            common = {"batch_size": args.batch_size, "conn": conn, "progress": False}
            if how == "local":
                report = ingest(parts[half], names[how], workers=args.workers, **common)
            else:
                report = ray_ingest.ingest(parts[half], names[how], address=address, **common)
            took = time.perf_counter() - start
            seconds[how] += took
            done[how] += report.files
            if how == "ray":
                startup.append(report.startup_seconds)
            print(
                f"{how} part {half}: {report.files} files in {took:.1f}s = {report.files / took:.2f} images/s "
                f"({report.embedded} embedded, {len(report.skipped)} skipped; first batch stored after "
                f"{report.startup_seconds:.1f}s); load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        local_ids, _, local_vectors = collection.model_vectors(conn, get_model(conn, names["local"]))
        ray_ids, _, ray_vectors = collection.model_vectors(conn, get_model(conn, names["ray"]))
        assert (local_ids == ray_ids).all(), "the two ingests stored different images"
        worst = float(np.abs(local_vectors - ray_vectors).max())
        writes = write_rate(conn, embedder.dim, thumbnail_jpeg(sample[0]))
        conn.close()
    finally:
        if group is not None:
            stop_ray_head(group)
        embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    local_rate, ray_rate = done["local"] / seconds["local"], done["ray"] / seconds["ray"]
    print(f"load average at end {os.getloadavg()}")
    print(
        f"\ndinov2-{args.size} (random weights, {embedder.info().get('runtime', 'torch')}), {len(files)} Caltech-101 "
        f"files, batch {args.batch_size}; local: {args.workers} decode threads; Ray: one node, {os.cpu_count()} CPUs, "
        "1 model actor, 2 writers"
    )
    print("| measure | value |\n|---|---:|")
    print(f"| time to start the cluster (`ray start --head`), s | {cluster_seconds:.1f} |")
    print(f"| local ingest, images/s | {local_rate:.2f} |")
    print(f"| Ray ingest (connect, actors start, model loads, pipeline), images/s | {ray_rate:.2f} |")
    print(f"| **Ray / local** (goal >= 0.8) | **{ray_rate / local_rate:.3f}** |")
    print(f"| Ray runs' start (until the first batch is stored), s | {' / '.join(f'{x:.1f}' for x in startup)} |")
    print(f"| model only (forward, batches of {args.batch_size}), images/s | {model_rate:.2f} |")
    print(f"| decode + preprocess only (one thread), images/s | {decode_rate:.1f} |")
    print(f"| one writer (write_batch, batches of 32, {embedder.dim}-d + thumbnail), rows/s | {writes:.0f} |")
    print(f"| largest difference between the two ingests' vectors | {worst:.2e} |")


if __name__ == "__main__":
    main()
