"""Concurrent use: 8 clients x 200 searches through the Python API on pooled connections, zero errors.

Latency percentiles are printed (run with -s to see them), never asserted: timings on a shared CI machine
say nothing about the code. Queries are mostly stored image ids, with every tenth an upload (raw bytes),
so both the index path and the embed-then-search path run concurrently.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import make_subset
from support.badinputs import encode, pattern

from cbir.indexing.ingest import ingest
from cbir.retrieval.search import search
from cbir.storage import db

CLIENTS, SEARCHES = 8, 200


@pytest.fixture(scope="module")
def collection(cbir_home: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 8, "rhino": 8, "airplanes": 8, "Leopards": 8})
    ingest([root], tiny_model, batch_size=16, progress=False)
    with db.connect() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM images ORDER BY id")]
    uploads = [encode(pattern(seed, (320, 240)), "JPEG") for seed in range(4)]  # new images: embedded per query
    return {"ids": ids, "uploads": uploads, "model": tiny_model}


def client(number: int, collection: dict) -> tuple[list[float], list[str]]:
    """One analyst: SEARCHES queries, each on a connection borrowed from the shared pool."""
    pool, ids, uploads = db.pool(), collection["ids"], collection["uploads"]
    latencies, errors = [], []
    for i in range(SEARCHES):
        query = uploads[(number + i) % len(uploads)] if i % 10 == 0 else ids[(number * 31 + i) % len(ids)]
        start = time.perf_counter()
        try:
            with pool.connection() as conn:
                hits = search(query, k=5, model=collection["model"], conn=conn)
            if len(hits) != 5:
                errors.append(f"query {i}: {len(hits)} hits")
        except Exception as exc:  # every kind of failure counts, so the test can see it
            errors.append(f"query {i}: {type(exc).__name__}: {exc}")
        latencies.append(time.perf_counter() - start)
    return latencies, errors


def test_concurrent_clients_have_zero_errors(collection: dict) -> None:
    search(collection["ids"][0], k=5, model=collection["model"])  # load the model once, outside the timing
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as workers:
        results = list(workers.map(lambda n: client(n, collection), range(CLIENTS)))
    wall = time.perf_counter() - start
    latencies = sorted(t for lat, _ in results for t in lat)
    errors = [e for _, errs in results for e in errs]
    assert len(latencies) == CLIENTS * SEARCHES
    assert errors == [], errors[:5]
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    print(
        f"\n{CLIENTS} clients x {SEARCHES} searches: {len(latencies)} in {wall:.1f}s "
        f"({len(latencies) / wall:.0f}/s), p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, errors 0"
    )
    with db.pool().connection() as conn:  # nothing leaked: every borrowed connection came back idle
        assert conn.info.transaction_status.name == "IDLE"
    stats = db.pool().get_stats()
    assert stats["pool_size"] <= 8 and stats.get("requests_errors", 0) == 0, stats
    db.pool().close()
    db.pool.cache_clear()
