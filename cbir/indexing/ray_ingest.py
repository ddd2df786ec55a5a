"""Ingest on a Ray cluster, with the local ingest's guarantees: `cbir ingest PATH... --ray ADDRESS`.

Why Ray Data: embedding is the first wall past one machine (docs/scaling.md), and Ray Data's batch-inference
shape (CPU tasks that prepare inputs -> a pool of model actors, one GPU each -> writers) spreads it over a cluster
without cbir managing processes. Ray is an optional dependency (`pip install 'cbir[ray]'`).

What runs where:
- the driver (this process) walks the folders, registers the model and the run's folders, reads which contents
  are already embedded, and cuts the files into batches in discovery order, exactly as the local ingest;
- CPU tasks run the local ingest's own `process_chunk` on each batch: read, hash, skip known content before
  decoding, decode, thumbnail, preprocess;
- a pool of embedder actors (`actors`, each loads the model once; `num_gpus=1` each when the cluster has GPUs)
  runs `encode_chunk`;
- a pool of writer actors (`writers`, one database connection each) stores each batch with `write_chunk`, i.e.
  `cbir.storage.collection.write_batch`: one transaction per batch, rows deduplicated by sha256, ON CONFLICT safe
  when two writers meet the same bytes. A killed node loses only uncommitted batches, which Ray retries or a
  re-run redoes.
- the driver shows progress (files done, images/s) and, at the end, settles which path of a content found at
  several paths is its first (the first in discovery order, as the local ingest stores it), since parallel
  writers may commit copies in any order.

Workers reach the database through the driver's URL (the embedded server's Unix socket works on the driver's
machine only; a real cluster sets CBIR_DATABASE_URL) and get the driver's CBIR_* settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from cbir.embedders import get_embedder
from cbir.errors import BadArgument, CbirError, ClusterError, first_line
from cbir.indexing.categories import category_of
from cbir.indexing.ingest import (
    IngestReport,
    discover,
    display_path,
    encode_chunk,
    process_chunk,
    start_run,
    write_chunk,
)
from cbir.storage import collection, db
from cbir.storage.models import Model

INSTALL = "pip install 'cbir[ray]'"
LOOPBACK = ("127.0.0.1", "localhost")
# What the CPU tasks need from the model is its preprocessing: keep them off any GPU and off converted runtimes.
_READER_ENV = {"CBIR_DEVICE": "cpu", "CBIR_RUNTIME": "torch"}


def import_ray() -> ModuleType:
    """Ray, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data comes with the [data] extra)
    except ImportError:
        raise ClusterError(f"--ray needs the optional dependency Ray (with Ray Data): {INSTALL}") from None
    return ray


def init_kwargs(address: str) -> dict[str, Any]:
    """ray.init arguments for an address: 'local' (or empty: a cluster started for the run), 'auto',
    HOST:PORT of a running cluster's head, or ray://HOST:PORT (Ray Client). Loopback stays on loopback."""
    address = address.strip()
    if address in ("", "local"):
        return {"address": "local", "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    if address == "auto" or address.startswith("ray://"):
        return {"address": address}
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BadArgument(
            f"--ray takes local, auto, HOST:PORT or ray://HOST:PORT, not {address!r} (the paths come first)"
        )
    return {"address": address} | ({"_node_ip_address": "127.0.0.1"} if host in LOOPBACK else {})


def worker_env() -> dict[str, str]:
    """The driver's cbir settings, so every worker applies the same limits, precision and runtime."""
    return {k: v for k, v in os.environ.items() if k.startswith("CBIR_") or k == "HF_HUB_OFFLINE"}


@contextlib.contextmanager
def cluster(ray: ModuleType, address: str) -> Iterator[None]:
    """Connected to (or running) a Ray cluster for the duration; a local one stops with it."""
    kwargs = init_kwargs(address)
    try:
        ray.init(logging_level=logging.ERROR, runtime_env={"env_vars": worker_env()}, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address or 'local'}: {first_line(exc)}") from None
    for name in ("ray.data", "ray"):  # cbir shows its own progress bar
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()


def _column(values: Iterable[Any]) -> np.ndarray:
    """A column of Python objects (pickled bytes, lists): numpy would otherwise try to make a 2-D array."""
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def read_chunks(batch: dict[str, np.ndarray], model: str, known: set[str], label: str) -> dict[str, np.ndarray]:
    """CPU task: the local ingest's read, hash, decode and preprocessing of each batch of files."""
    embedder = get_embedder(model)  # once per worker process; only its preprocessing is used here
    chunks = [process_chunk(pickle.loads(files), embedder, known, label) for files in batch["files"]]
    return {"chunk": _column(pickle.dumps(c, protocol=5) for c in chunks)}


class Embed:
    """Actor: loads the model once and embeds each batch's prepared images (on its own GPU when it has one)."""

    def __init__(self, model: str) -> None:
        _use_the_nodes_cores()
        self.embedder = get_embedder(model)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks, vectors = [], []
        for blob in batch["chunk"]:
            chunk = pickle.loads(blob)
            vectors.append(pickle.dumps(encode_chunk(self.embedder, chunk), protocol=5))
            chunk.prepared = None  # the writers need the facts and thumbnails, not the model's inputs
            chunks.append(pickle.dumps(chunk, protocol=5))
        return {"chunk": _column(chunks), "vectors": _column(vectors)}


def _use_the_nodes_cores() -> None:
    """Ray limits an actor's threads to its logical CPUs (1); a model on the CPU should use the node's cores,
    as the local ingest's does (its OpenMP threads sleep while they wait, so readers still get time)."""
    import ray

    if ray.get_gpu_ids():
        return
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class Write:
    """Actor: one database connection; stores each batch in one transaction through the local ingest's writer."""

    def __init__(self, url: str, model: Model) -> None:
        self.conn = db.connect(url)
        self.model = model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        files, reports = [], []
        for chunk_blob, vector_blob in zip(batch["chunk"], batch["vectors"], strict=True):
            chunk = pickle.loads(chunk_blob)
            report = IngestReport(model=self.model.name)
            # known = empty: the readers already left known contents undecoded; duplicates across batches meet
            # in the database (ON CONFLICT), within a batch here.
            write_chunk(self.conn, self.model, chunk, pickle.loads(vector_blob), set(), report)
            files.append(len(chunk.outcomes))
            reports.append(pickle.dumps(report))
        return {"files": np.array(files), "report": _column(reports)}


def merge(total: IngestReport, part: IngestReport) -> None:
    """Add a batch's counts and lists to the run's report (whatever fields the local ingest reports)."""
    for f in fields(IngestReport):
        mine, theirs = getattr(total, f.name), getattr(part, f.name)
        if isinstance(mine, list):
            mine.extend(theirs)
        elif isinstance(mine, int) and f.name != "files":
            setattr(total, f.name, mine + theirs)


def ingest(
    paths: Iterable[str | Path],
    model: str,
    address: str = "local",
    batch_size: int = 32,
    label: str = "folder",
    actors: int = 1,
    writers: int = 2,
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> IngestReport:
    """Embed and store every image under `paths` that the model has not embedded yet, on a Ray cluster."""
    for name, value in (("--batch-size", batch_size), ("--actors", actors), ("--writers", writers)):
        if value < 1:
            raise BadArgument(f"{name} must be at least 1")
    category_of(Path("x/y"), label)  # validate before any work
    init_kwargs(address)
    ray = import_ray()
    paths = list(paths)
    files = list(discover(paths))
    embedder = get_embedder(model)  # fails fast, and gives the model's kind and size for its row
    if embedder.fitted_on_collection:
        raise BadArgument(f"{embedder.name} is fitted on the whole collection on one machine: ingest it without --ray")
    url = db.database_url()
    with db.connection(conn) as conn:
        model_row, known = start_run(conn, embedder, paths)
        first_new_id = collection.max_image_id(conn)
        before = _stored(conn, model_row)
        report = IngestReport(model=model_row.name, files=len(files))
        start = time.perf_counter()
        with cluster(ray, address):
            rows = pipeline(ray, files, embedder.name, model_row, known, label, batch_size, actors, writers, url)
            with tqdm(
                total=len(files), unit="img", desc="ingest (ray)", disable=not progress, dynamic_ncols=True
            ) as bar:
                for row in _guarded(rows):
                    report.startup_seconds = report.startup_seconds or time.perf_counter() - start
                    merge(report, pickle.loads(row["report"]))
                    bar.update(int(row["files"]))
        settle_first_paths(conn, files, label, first_new_id)
        # Counted in the database: a batch Ray retried after its first attempt had committed adds nothing twice.
        after = _stored(conn, model_row)
        report.new_images, report.new_paths, report.embedded = (a - b for a, b in zip(after, before, strict=True))
        report.seconds = time.perf_counter() - start
        return report


def _stored(conn: psycopg.Connection, model: Model) -> tuple[int, int, int]:
    """(images, paths, the model's embeddings) stored now."""
    counts = collection.counts(conn)
    return counts["images"], counts["paths"], collection.embedding_count(conn, model)


def pipeline(
    ray: ModuleType,
    files: list[Path],
    model: str,
    model_row: Model,
    known: set[str],
    label: str,
    batch_size: int,
    actors: int,
    writers: int,
    url: str,
) -> Iterator[dict[str, Any]]:
    """The Ray Data plan: one row per batch of files (so a batch is one transaction, as locally), streamed."""
    batches = [{"files": pickle.dumps(files[i : i + batch_size])} for i in range(0, len(files), batch_size)]
    if not batches:
        return iter(())
    # With GPUs, one per model actor. Without, a model actor uses all its node's cores through its threads, as the
    # local ingest's model does beside its decode threads, so it claims no CPU slot (otherwise a one-CPU node could
    # never run a reader beside it); Ray Data spreads actors over the nodes by default.
    gpus = ray.cluster_resources().get("GPU", 0) >= 1
    model_resources = {"num_gpus": 1} if gpus else {"num_cpus": 0}
    ds = ray.data.from_items(batches, override_num_blocks=len(batches))
    ds = ds.map_batches(
        read_chunks,
        batch_size=1,
        fn_kwargs={"model": model, "known": known, "label": label},
        num_cpus=1,
        runtime_env={"env_vars": worker_env() | _READER_ENV},
    )
    ds = ds.map_batches(
        Embed,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"model": model},
        **model_resources,
    )
    ds = ds.map_batches(
        Write,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=writers),
        fn_constructor_kwargs={"url": url, "model": model_row},
        num_cpus=0,  # waits on the database, not on a core
    )
    return ds.iter_rows()


def _guarded(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A failure anywhere in the cluster as one line; whole batches only were stored, so a re-run completes."""
    try:
        yield from rows
    except CbirError:
        raise
    except Exception as exc:
        cause = _cbir_cause(exc)
        raise ClusterError(
            f"the Ray ingest stopped ({cause or first_line(exc)}); whole batches only were stored: run it again"
        ) from None


def _cbir_cause(exc: BaseException) -> str | None:
    """The message of a CbirError raised in a worker (Ray wraps it), if that is what stopped the run."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CbirError):
            return str(seen)
        seen = getattr(seen, "cause", None) or seen.__cause__
    return None


def settle_first_paths(conn: psycopg.Connection, files: list[Path], label: str, after_id: int) -> None:
    """For contents this run added at several paths, keep the first in discovery order as the image's path and
    category, as the local ingest (which writes in that order) does."""
    order = {display_path(f): (n, category_of(f, label)) for n, f in enumerate(files)}
    changes = []
    for image_id, stored, found in collection.images_at_several_paths_since(conn, after_id):
        ours = [p for p in found if p in order]
        if not ours:
            continue
        first = min(ours, key=lambda p: order[p][0])
        if first != stored:
            changes.append((image_id, first, order[first][1]))
    if changes:
        collection.set_first_paths(conn, changes)
