"""HNSW vs exact k-NN search in the real embedded Postgres, on synthetic clustered unit vectors.

Why synthetic: a million real embeddings do not exist here, and search cost depends on the vectors' shape
(dimension, clustering, intrinsic dimension), not on what they mean. Each point is a cluster centre plus
variation in a low-dimensional cluster-specific subspace plus a little isotropic noise, normalised, which
is closer to image embeddings than uniform random vectors (whose neighbours are all nearly equidistant).

For each size and type (`vector`, `halfvec`; `bit-rerank` on request: an index on the binary-quantized vectors,
whose `--rerank` x 10 Hamming candidates are re-ranked by exact cosine, as `cbir index --type bit-rerank` builds it
and cbir searches it, ef_search at least the candidate count) it reports HNSW build time and size, p50/p95 latency of
k=10 queries through the index and by exact scan, HNSW recall@10 against exact float32 neighbours (computed
in numpy and checked against the database's own exact scan) for a curve of `hnsw.ef_search`, and recall of
category-filtered queries with and without iterative index scans. Every ratio is measured in one run.

    python benchmarks/search_bench.py --sizes 10000,100000,1000000
    python benchmarks/search_bench.py --sizes 2000 --queries 20 --ef 40,100   # smoke run

The database lives in its own CBIR_HOME (default /tmp/cbir-search-bench), never the user's collection.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

K = 10


@dataclass
class Result:
    size: int
    type: str
    build_s: float
    index_mb: float
    table_mb: float
    exact_p50_ms: float
    exact_p95_ms: float
    exact_matches_numpy: float
    curve: list[dict] = field(default_factory=list)
    filtered: list[dict] = field(default_factory=list)


def clustered_unit_vectors(
    n: int, dim: int, rng: np.random.Generator, centres: np.ndarray, bases: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors around random cluster centres; returns (vectors, cluster labels)."""
    labels = rng.integers(len(centres), size=n)
    out = np.empty((n, dim), dtype=np.float32)
    rank = bases.shape[2]
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(centres) + 1))
    for c in range(len(centres)):
        idx = order[bounds[c] : bounds[c + 1]]
        z = rng.standard_normal((len(idx), rank)).astype(np.float32) / np.sqrt(rank)
        noise = rng.standard_normal((len(idx), dim)).astype(np.float32) / np.sqrt(dim)
        out[idx] = centres[c] + 0.6 * (z @ bases[c].T) + 0.15 * noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out, labels


def make_dataset(n: int, n_queries: int, dim: int, seed: int, categories: int):
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 1000)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((n_clusters, dim, 16)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=1, keepdims=True)
    data, _ = clustered_unit_vectors(n, dim, rng, centres, bases)
    queries, _ = clustered_unit_vectors(n_queries, dim, rng, centres, bases)
    cats = rng.integers(categories, size=n).astype(np.int16)  # independent of position: the hard case
    qcats = rng.integers(categories, size=n_queries).astype(np.int16)
    return data, cats, queries, qcats


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Ids of the k largest cosine similarities (data are unit vectors), in chunks to bound memory."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 64):
        sims = queries[start : start + 64] @ data.T
        if mask is not None:
            sims[~mask[start : start + 64]] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        out[start : start + 64] = part
    return out


def relative_contrast(data: np.ndarray, queries: np.ndarray) -> float:
    """How much nearer the 10th neighbour is than an average point (lower = harder for any ANN index)."""
    ratios = []
    for q in queries[:50]:
        dist = 1 - data @ q
        ratios.append(dist.mean() / np.partition(dist, K - 1)[K - 1])
    return float(np.mean(ratios))


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)]))


def connect(home: str):
    os.environ["CBIR_HOME"] = home
    import psycopg
    from pgvector.psycopg import register_vector

    from cbir.storage import db

    url = db.database_url()
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    return conn


def load_table(conn, table: str, data: np.ndarray, cats: np.ndarray, dim: int) -> None:
    """COPY the float32 rows in binary (the fast bulk path)."""
    from tqdm import tqdm

    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, category smallint, embedding vector({dim}))")
    with conn.cursor() as cur, cur.copy(f"COPY {table} (id, category, embedding) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "int2", "vector"])
        for i in tqdm(range(len(data)), desc=f"COPY {table}", unit="row", mininterval=2, leave=False):
            cp.write_row((i, int(cats[i]), data[i]))
    conn.execute(f"VACUUM ANALYZE {table}")


def build_index(conn, table: str, typ: str, dim: int, workers: int, m: int, ef_construction: int) -> float:
    opclass = "bit_hamming_ops" if typ == "bit-rerank" else f"{typ}_cosine_ops"
    expr = {"vector": "embedding", "halfvec": f"(embedding::halfvec({dim}))"}.get(
        typ, f"(binary_quantize(embedding)::bit({dim}))"
    )
    conn.execute("SET maintenance_work_mem = '6GB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
    t0 = time.perf_counter()
    conn.execute(
        f"CREATE INDEX {_index(table, typ)} ON {table} USING hnsw ({expr} {opclass})"
        f" WITH (m = {m}, ef_construction = {ef_construction})"
    )
    return time.perf_counter() - t0


def _index(table: str, typ: str) -> str:
    return f"{table}_{typ.replace('-', '_')}_hnsw"


def drop_index(conn, table: str, typ: str) -> None:
    conn.execute(f"DROP INDEX IF EXISTS {_index(table, typ)}")


def query_sql(table: str, typ: str, dim: int, filtered: bool, rerank: int = 10) -> str:
    where = "WHERE category = %(c)s" if filtered else ""
    if typ == "bit-rerank":  # Hamming candidates through the index, re-ranked by the exact cosine
        hamming = f"binary_quantize(embedding)::bit({dim}) <~> binary_quantize(%(q)s::vector({dim}))::bit({dim})"
        candidates = f"SELECT id, embedding FROM {table} {where} ORDER BY {hamming} LIMIT {rerank * K}"
        return f"SELECT id FROM ({candidates}) c ORDER BY embedding <=> %(q)s LIMIT {K}"
    expr = "embedding" if typ == "vector" else f"embedding::halfvec({dim})"
    param = "%(q)s" if typ == "vector" else f"%(q)s::vector({dim})::halfvec({dim})"
    return f"SELECT id FROM {table} {where} ORDER BY {expr} <=> {param} LIMIT {K}"


def run_queries(conn, sql: str, queries: np.ndarray, qcats: np.ndarray, settings: dict[str, str]):
    """(ids per query, latencies in ms); each query runs in its own transaction with SET LOCALs."""
    found, times = [], []
    for q, c in zip(queries, qcats, strict=True):
        t0 = time.perf_counter()
        with conn.transaction():
            for name, value in settings.items():
                conn.execute(f"SET LOCAL {name} = {value}")
            rows = conn.execute(sql, {"q": q, "c": int(c)}, prepare=True).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
        found.append([r[0] for r in rows])
    return found, np.array(times)


def pct(times: np.ndarray, p: float) -> float:
    return float(np.percentile(times, p))


def bench_size(conn, n: int, args) -> list[Result]:
    t0 = time.perf_counter()
    data, cats, queries, qcats = make_dataset(n, args.queries, args.dim, args.seed, args.categories)
    truth = exact_topk(data, queries, K)
    ftruth = exact_topk(data, queries, K, mask=cats[None, :] == qcats[:, None])
    print(f"[{n}] generated data and exact neighbours in {time.perf_counter() - t0:.1f}s", flush=True)
    print(f"[{n}] relative contrast (mean distance / 10th-NN distance): {relative_contrast(data, queries):.2f}")
    table = f"bench_{n}"
    t0 = time.perf_counter()
    load_table(conn, table, data, cats, args.dim)
    print(f"[{n}] COPY binary + VACUUM ANALYZE in {time.perf_counter() - t0:.1f}s", flush=True)
    table_mb = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0] / 2**20
    n_exact = min(args.exact_queries, len(queries))
    # Exact float32 scan before any index exists: the planner can only scan (in parallel if it likes).
    # It is the reference for both types: a halfvec column would only be scanned exactly to re-rank.
    exact_sql = query_sql(table, "vector", args.dim, filtered=False)
    run_queries(conn, exact_sql, queries[:2], qcats[:2], {})  # warm the cache
    exact_found, exact_t = run_queries(conn, exact_sql, queries[:n_exact], qcats[:n_exact], {})
    print(f"[{n}] exact scan p50 {pct(exact_t, 50):.1f} ms", flush=True)
    results = []
    for typ in args.types:
        build_s = build_index(conn, table, typ, args.dim, args.workers, args.m, args.ef_construction)
        index_mb = conn.execute("SELECT pg_relation_size(%s)", (_index(table, typ),)).fetchone()[0] / 2**20
        res = Result(
            size=n,
            type=typ,
            build_s=build_s,
            index_mb=index_mb,
            table_mb=table_mb,
            exact_p50_ms=pct(exact_t, 50),
            exact_p95_ms=pct(exact_t, 95),
            exact_matches_numpy=recall(exact_found, truth[:n_exact]),
        )
        hnsw_sql = query_sql(table, typ, args.dim, filtered=False, rerank=args.rerank)
        floor = args.rerank * K if typ == "bit-rerank" else 1  # cbir raises ef_search to the candidate count
        plan = conn.execute("EXPLAIN " + hnsw_sql, {"q": queries[0], "c": 0}).fetchall()
        assert any("hnsw" in r[0] for r in plan), f"HNSW index not used: {plan}"
        for ef in sorted({max(ef, floor) for ef in args.ef}):
            settings = {"hnsw.ef_search": str(ef)}
            run_queries(conn, hnsw_sql, queries[:20], qcats[:20], settings)  # warm
            found, times = run_queries(conn, hnsw_sql, queries, qcats, settings)
            res.curve.append(
                {
                    "ef_search": ef,
                    "recall@10": recall(found, truth),
                    "p50_ms": pct(times, 50),
                    "p95_ms": pct(times, 95),
                    "speedup_p50": res.exact_p50_ms / pct(times, 50),
                }
            )
            print(f"[{n} {typ}] ef={ef}: {res.curve[-1]}", flush=True)
        fsql = query_sql(table, typ, args.dim, filtered=True, rerank=args.rerank)
        for mode in ("off", "relaxed_order", "strict_order"):
            settings = {"hnsw.ef_search": str(max(args.filter_ef, floor)), "hnsw.iterative_scan": mode}
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.iterative_scan = {mode}")
                plan = conn.execute("EXPLAIN " + fsql, {"q": queries[0], "c": 0}).fetchall()
            found, times = run_queries(conn, fsql, queries, qcats, settings)
            res.filtered.append(
                {
                    "iterative_scan": mode,
                    "ef_search": max(args.filter_ef, floor),
                    "recall@10": recall(found, ftruth),
                    "short_results": int(sum(len(f) < K for f in found)),
                    "uses_hnsw": any("hnsw" in r[0] for r in plan),
                    "p50_ms": pct(times, 50),
                    "p95_ms": pct(times, 95),
                }
            )
        drop_index(conn, table, typ)  # one index at a time, so each is measured alone
        results.append(res)
        print(f"[{n} {typ}] build {build_s:.1f}s, index {index_mb:.0f} MB, filtered {res.filtered}", flush=True)
    if not args.keep:
        conn.execute(f"DROP TABLE {table}")
    return results


def choose_ef(results: list[Result], goal_recall: float) -> int | None:
    """Smallest ef_search whose recall@10 meets the goal for `vector` at the largest size measured."""
    biggest = max(r.size for r in results)
    for r in results:
        if r.size == biggest and r.type == "vector":
            ok = [c["ef_search"] for c in r.curve if c["recall@10"] >= goal_recall]
            return min(ok) if ok else None
    return None


def print_tables(results: list[Result], chosen: int | None) -> None:
    print("\n| rows | type | build s | index MB | exact p50 ms | exact p95 ms | exact = numpy |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.size:,} | {r.type} | {r.build_s:.1f} | {r.index_mb:.0f} | {r.exact_p50_ms:.1f} "
            f"| {r.exact_p95_ms:.1f} | {r.exact_matches_numpy:.3f} |"
        )
    print("\n| rows | type | ef_search | recall@10 | HNSW p50 ms | HNSW p95 ms | exact p50 / HNSW p50 |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        for c in r.curve:
            print(
                f"| {r.size:,} | {r.type} | {c['ef_search']} | {c['recall@10']:.3f} | {c['p50_ms']:.2f} "
                f"| {c['p95_ms']:.2f} | {c['speedup_p50']:.1f}x |"
            )
    print("\n| rows | type | iterative_scan | plan | ef_search | recall@10 | queries < 10 rows | p50 ms | p95 ms |")
    print("|---:|---|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        for f in r.filtered:
            print(
                f"| {r.size:,} | {r.type} | {f['iterative_scan']} | {'HNSW' if f['uses_hnsw'] else 'scan'} "
                f"| {f['ef_search']} | {f['recall@10']:.3f} "
                f"| {f['short_results']} | {f['p50_ms']:.2f} | {f['p95_ms']:.2f} |"
            )
    print(f"\nsmallest ef_search with vector recall@10 >= goal at the largest size: {chosen}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=ints, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--types", type=lambda s: s.split(","), default=["vector", "halfvec"])
    p.add_argument("--ef", type=ints, default=[20, 40, 64, 100, 150, 200, 300, 400, 600, 800])
    p.add_argument("--filter-ef", type=int, default=None, help="ef_search for filtered queries (default: chosen)")
    p.add_argument("--queries", type=int, default=200, help="HNSW queries per ef_search value")
    p.add_argument("--exact-queries", type=int, default=30, help="exact-scan queries timed")
    p.add_argument("--categories", type=int, default=50, help="categories for filtered queries (2%% each)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--m", type=int, default=16, help="HNSW m (pgvector's default, as cbir builds)")
    p.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction (pgvector's default)")
    p.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers for index builds")
    p.add_argument("--goal-recall", type=float, default=0.98)
    p.add_argument("--rerank", type=int, default=10, help="bit-rerank: Hamming candidates per result (CBIR_RERANK)")
    p.add_argument("--home", default="/tmp/cbir-search-bench", help="CBIR_HOME of the benchmark database")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the tables and the server")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.filter_ef is None:
        from cbir.config import DEFAULT_EF_SEARCH

        args.filter_ef = DEFAULT_EF_SEARCH
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.processor() or platform.machine()}")
    print(f"nproc {os.cpu_count()}, load average {os.getloadavg()}", flush=True)
    print(f"HNSW m={args.m}, ef_construction={args.ef_construction}")
    conn = connect(args.home)
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
    print(f"shared_buffers {buffers}")
    print(f"pgvector {version}, {conn.execute('SELECT version()').fetchone()[0].split(',')[0]}")
    results = []
    try:
        for n in args.sizes:
            results += bench_size(conn, n, args)
    finally:
        conn.close()
        if not args.keep:
            from cbir.storage import embedded

            embedded.stop()
    chosen = choose_ef(results, args.goal_recall)
    print_tables(results, chosen)
    print(f"load average at end {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
