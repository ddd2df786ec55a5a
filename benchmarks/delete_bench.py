"""HNSW search after removing half of a collection: recall@10 and latency before and after VACUUM (and REINDEX).

pgvector does not take a deleted row out of an HNSW graph when it is deleted: the row stays a node until
VACUUM removes it and repairs its neighbours' links. Until then a search still walks through it and spends
part of its `hnsw.ef_search` candidate list on rows it must then drop. This script measures what that costs
in cbir's own schema and query:

- N synthetic clustered unit vectors (64-d by default, made as in search_bench.py) stored as cbir images of
  one vector model, with the model's partial HNSW index (m 16, ef_construction 64, as cbir builds it);
- half of the images, chosen at random, removed by cbir's own remove path (`path_changes.remove_paths`, 1,000
  paths per transaction; embeddings and the map's points, one per image, deleted by cascade), with autovacuum
  off on the tables so that nothing cleans up before the measurement;
- the same held-out queries through cbir's k-NN query (`cbir.storage.neighbours.nearest`: iterative index
  scan on) and, for comparison, through the same SQL with iterative scans off, at ef_search 200 (cbir's
  default) and 40; recall@10 is against exact neighbours among the images still stored (numpy);
- in four states: before the removal, after it, after `VACUUM`, after `REINDEX INDEX CONCURRENTLY` of the
  HNSW index (or, with --reindex-first, REINDEX before VACUUM), each step timed;
- then, apart, what a removal's cascade into a stored evaluation run costs with and without the indexes
  migration 060 adds on evaluation_neighbours (query_id, image_id).

    python benchmarks/delete_bench.py                       # 100,000 vectors, 200 queries
    python benchmarks/delete_bench.py --reindex-first       # the other order of the two clean-ups
    python benchmarks/delete_bench.py --size 2000 --queries 20   # smoke run

The database lives in its own CBIR_HOME (default /tmp/cbir-delete-bench), which the script empties first.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_bench import exact_topk, make_dataset, pct, recall  # noqa: E402

K = 10
MODEL = "delete-bench"


@dataclass
class State:
    name: str
    ef: int
    live: int
    index_mb: float
    cbir_recall: float
    cbir_p50: float
    cbir_p95: float
    off_recall: float
    off_short: int
    off_p50: float
    seconds: float | None = None  # how long the step that led here took


def connect(home: str):
    os.environ["CBIR_HOME"] = home
    from cbir.storage import db

    return db.connect()


def empty_database(conn) -> None:
    """Refuse a database holding anything but this benchmark's rows, then empty it."""
    names = [r[0] for r in conn.execute("SELECT name FROM models")]
    if set(names) - {MODEL}:
        raise SystemExit(f"{conn.info.dbname} holds other models ({names}): give --home an empty folder")
    conn.execute("TRUNCATE images, models RESTART IDENTITY CASCADE")


def load(conn, data: np.ndarray, labels: np.ndarray):
    """Store the vectors as images (with paths) and embeddings of one model, then build its HNSW index."""
    from tqdm import tqdm

    from cbir.distances import COSINE
    from cbir.storage.models import ensure_model

    dim = data.shape[1]
    model = ensure_model(conn, MODEL, "vector", dim, COSINE, {"source": "benchmarks/delete_bench.py"})
    index = f"embeddings_hnsw_model_{model.id}"
    conn.execute(f"DROP INDEX {index}")  # built once after the COPY: faster than row by row
    with conn.cursor() as cur:
        with cur.copy(
            "COPY images (id, sha256, path, category, width, height, format, bytes, thumbnail) FROM STDIN"
        ) as cp:
            for i in tqdm(range(len(data)), desc="COPY images", unit="row", mininterval=2, leave=False):
                cp.write_row((i + 1, f"{i:064x}", path_of(i, labels), f"c{labels[i]}", 1, 1, "JPEG", 1, b""))
        with cur.copy("COPY image_paths (path, image_id) FROM STDIN") as cp:
            for i in range(len(data)):
                cp.write_row((path_of(i, labels), i + 1))
        with cur.copy("COPY embeddings (image_id, model_id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int4", "vector"])
            for i in tqdm(range(len(data)), desc="COPY embeddings", unit="row", mininterval=2, leave=False):
                cp.write_row((i + 1, model.id, data[i]))
        projection = cur.execute(
            "INSERT INTO projections (model_id, n_neighbors, min_dist, metric, images, seconds, params)"
            " VALUES (%s, 15, 0, 'euclidean', %s, 0, '{}') RETURNING id",
            (model.id, len(data)),
        ).fetchone()[0]
        with cur.copy("COPY projection_points (projection_id, image_id, x, y) FROM STDIN") as cp:
            for i in range(len(data)):  # a map of every image, as `cbir project` stores it
                cp.write_row((projection, i + 1, float(data[i, 0]), float(data[i, 1])))
    conn.execute("SELECT setval('images_id_seq', %s)", (len(data),))
    conn.execute("VACUUM ANALYZE images")
    conn.execute("VACUUM ANALYZE image_paths")
    conn.execute("VACUUM ANALYZE embeddings")
    conn.execute("VACUUM ANALYZE projection_points")
    for table in ("images", "image_paths", "embeddings", "projection_points"):  # "before VACUUM" must stay so
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    conn.execute("SET maintenance_work_mem = '1GB'")
    t0 = time.perf_counter()
    ensure_model(conn, MODEL, "vector", dim, COSINE, {})  # creates the index again
    return model, index, time.perf_counter() - t0


def path_of(i: int, labels: np.ndarray) -> str:
    return f"/bench/c{labels[i]}/{i}.jpg"


def measure(
    conn, model, index: str, name: str, queries: np.ndarray, data: np.ndarray, live: np.ndarray, efs: list[int]
) -> list[State]:
    """Both query modes on the held-out queries for each ef_search, against exact neighbours among live rows.

    The two modes alternate query by query, so a change in the machine's load hits both alike.
    """
    from cbir.storage.neighbours import nearest, nearest_query

    ids = np.flatnonzero(live)
    truth = ids[exact_topk(data[ids], queries, K)] + 1
    index_mb = conn.execute("SELECT pg_relation_size(%s)", (index,)).fetchone()[0] / 2**20
    states = []
    for ef in efs:
        for q in queries:
            nearest(conn, model, q, K, ef_search=ef)  # one untimed pass first: both modes then read cached pages
        found, times, off_found, off_times = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            found.append([h.id for h in nearest(conn, model, q, K, ef_search=ef)])
            times.append((time.perf_counter() - t0) * 1000)
            query, params = nearest_query(model, q, K)
            t0 = time.perf_counter()
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'off', true)")
                off_found.append([r[0] for r in conn.execute(query, params).fetchall()])
            off_times.append((time.perf_counter() - t0) * 1000)
        times, off_times = np.array(times), np.array(off_times)
        states.append(
            State(
                name=name,
                ef=ef,
                live=int(live.sum()),
                index_mb=index_mb,
                cbir_recall=recall(found, truth),
                cbir_p50=pct(times, 50),
                cbir_p95=pct(times, 95),
                off_recall=recall(off_found, truth),
                off_short=sum(len(f) < K for f in off_found),
                off_p50=pct(off_times, 50),
            )
        )
    return states


def remove_half(conn, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Remove a random half of the images through cbir's remove path; returns (live mask, seconds)."""
    from tqdm import tqdm

    from cbir.indexing.categories import settler
    from cbir.storage import path_changes

    n = len(labels)
    gone = np.sort(rng.choice(n, n // 2, replace=False))
    paths = [path_of(int(i), labels) for i in gone]
    t0 = time.perf_counter()
    settle = settler(relabel=False)
    for start in tqdm(range(0, len(paths), 1000), desc="remove", unit="batch", leave=False):
        path_changes.remove_paths(conn, paths[start : start + 1000], settle)
    seconds = time.perf_counter() - t0
    live = np.ones(n, dtype=bool)
    live[gone] = False
    return live, seconds


CASCADE_INDEXES = {  # migration 060's indexes on the evaluation neighbours a removal cascades to
    "evaluation_neighbours_query_idx": "evaluation_neighbours (query_id)",
    "evaluation_neighbours_image_idx": "evaluation_neighbours (image_id)",
}


def cascade_cost(conn, n: int) -> tuple[float, float]:
    """Seconds to remove 1,000 of n images that a stored evaluation run (n queries x 10 neighbours) names,
    with migration 060's indexes and without them (put back afterwards)."""
    from cbir.distances import COSINE
    from cbir.indexing.categories import settler
    from cbir.storage import path_changes
    from cbir.storage.models import ensure_model

    empty_database(conn)
    model = ensure_model(conn, MODEL, "vector", 2, COSINE, {})
    with conn.cursor() as cur:
        with cur.copy(
            "COPY images (id, sha256, path, category, width, height, format, bytes, thumbnail) FROM STDIN"
        ) as cp:
            for i in range(n):
                cp.write_row((i + 1, f"{i:064x}", f"/cascade/{i}.jpg", "c", 1, 1, "JPEG", 1, b""))
        with cur.copy("COPY image_paths (path, image_id) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((f"/cascade/{i}.jpg", i + 1))
        run = cur.execute(
            "INSERT INTO evaluation_runs (model_id, k, queries, images, seed, method, seconds, overall, macro)"
            " VALUES (%s, 10, %s, %s, 0, 'delete_bench', 0, '{}', '{}') RETURNING id",
            (model.id, n, n),
        ).fetchone()[0]
        with cur.copy("COPY evaluation_neighbours (run_id, query_id, rank, image_id, distance) FROM STDIN") as cp:
            for i in range(n):
                for rank in range(1, 11):
                    cp.write_row((run, i + 1, rank, (i + 7 * rank) % n + 1, 0.5))
    conn.execute("ANALYZE")
    seconds = []
    for start in (0, 1000):
        if start:
            for name in CASCADE_INDEXES:
                conn.execute(f"DROP INDEX {name}")
        t0 = time.perf_counter()
        path_changes.remove_paths(conn, [f"/cascade/{i}.jpg" for i in range(start, start + 1000)], settler(False))
        seconds.append(time.perf_counter() - t0)
    for name, target in CASCADE_INDEXES.items():
        conn.execute(f"CREATE INDEX {name} ON {target}")
    return seconds[0], seconds[1]


def took(states: list[State], seconds: float) -> list[State]:
    for s in states:
        s.seconds = seconds
    return states


def vacuum(conn, index: str) -> str:
    """VACUUM the tables a removal leaves dead rows in (embeddings first: it holds the HNSW index)."""
    for table in ("embeddings", "images", "image_paths", "projection_points"):
        conn.execute(f"VACUUM {table}")
    return "after VACUUM"


def reindex(conn, index: str) -> str:
    """Rebuild the HNSW index from the live rows, without blocking searches or writes meanwhile."""
    conn.execute(f"REINDEX INDEX CONCURRENTLY {index}")
    return "after REINDEX CONCURRENTLY"


def print_table(states: list[State], size: int, build_s: float, remove_s: float) -> None:
    first = {s.ef: s for s in reversed(states)}  # each ef_search's "before the removal" row
    print(f"\nHNSW build on {size:,} rows: {build_s:.1f}s; removing {size // 2:,} images: {remove_s:.1f}s "
          f"({size // 2 / remove_s:,.0f} images/s)")  # fmt: skip
    print(
        "\n| state | step took s | live rows | HNSW MB | ef_search | cbir recall@10 | cbir p50 ms | cbir p95 ms "
        "| p50 / before | iterative off: recall@10 | queries < 10 rows | p50 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in states:
        took = "-" if s.seconds is None else f"{s.seconds:.1f}"
        print(
            f"| {s.name} | {took} | {s.live:,} | {s.index_mb:.1f} | {s.ef} | {s.cbir_recall:.3f} "
            f"| {s.cbir_p50:.2f} | {s.cbir_p95:.2f} | {s.cbir_p50 / first[s.ef].cbir_p50:.2f} | {s.off_recall:.3f} "
            f"| {s.off_short} | {s.off_p50:.2f} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument(
        "--ef", type=lambda v: [int(x) for x in v.split(",")], default=[200, 40], help="hnsw.ef_search values"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cascade-size",
        type=int,
        default=20_000,
        help="images of the cascade measurement (a stored evaluation of each, 10 neighbours); 0: skip it",
    )
    p.add_argument("--reindex-first", action="store_true", help="REINDEX, then VACUUM (default: the other order)")
    p.add_argument("--home", default="/tmp/cbir-delete-bench", help="CBIR_HOME of the benchmark database")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.processor() or platform.machine()}")
    print(f"nproc {os.cpu_count()}, load average {os.getloadavg()}", flush=True)
    data, labels, queries, _ = make_dataset(args.size, args.queries, args.dim, args.seed, categories=1)
    labels = np.arange(args.size) // 1000  # folders of 1,000 images
    rng = np.random.default_rng(args.seed)
    conn = connect(args.home)
    try:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        print(f"pgvector {version}, {conn.execute('SELECT version()').fetchone()[0].split(',')[0]}, "
              f"{args.size:,} x {args.dim}-d, {args.queries} queries, k = {K}", flush=True)  # fmt: skip
        empty_database(conn)
        model, index, build_s = load(conn, data, labels)
        states = measure(conn, model, index, "before the removal", queries, data, np.ones(args.size, bool), args.ef)
        live, remove_s = remove_half(conn, labels, rng)
        after = measure(conn, model, index, "half removed, before VACUUM", queries, data, live, args.ef)
        states += took(after, remove_s)
        for step in [vacuum, reindex] if not args.reindex_first else [reindex, vacuum]:
            t0 = time.perf_counter()
            name = step(conn, index)
            seconds = time.perf_counter() - t0
            states += took(measure(conn, model, index, name, queries, data, live, args.ef), seconds)
        for table in ("images", "image_paths", "embeddings", "projection_points"):
            conn.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
        cascade = cascade_cost(conn, args.cascade_size) if args.cascade_size else None
    finally:
        conn.close()
        from cbir.storage import embedded

        embedded.stop()
    print_table(states, args.size, build_s, remove_s)
    if cascade:
        with_idx, without = cascade
        print(
            f"\nremoving 1,000 of {args.cascade_size:,} images named by a stored evaluation run "
            f"({args.cascade_size * 10:,} neighbour rows): {with_idx:.2f}s with migration 060's indexes on "
            f"evaluation_neighbours, {without:.2f}s without them ({without / with_idx:.0f}x)"
        )
    print(f"\nload average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
