"""`cbir index`: each index type is what the planner uses, keeps recall@10 >= 0.95 against exact search on a
synthetic 20k set, and searches keep working while the index is rebuilt.

The vectors are synthetic clustered unit vectors of 384 dimensions (dinov2-small's size), the shape
benchmarks/search_bench.py uses: cluster centres plus variation in a low-dimensional subspace plus noise.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from support import run_cli

from cbir.errors import BadArgument
from cbir.storage import db, indexes
from cbir.storage.models import IndexChoice, Model, ensure_model, get_model
from cbir.storage.neighbours import nearest, nearest_query

N, DIM, QUERIES, K = 20_000, 384, 60, 10
NAME = "synthetic-384"


def clustered_unit_vectors(n: int, rng: np.random.Generator, centres: np.ndarray, bases: np.ndarray) -> np.ndarray:
    labels = rng.integers(len(centres), size=n)
    z = rng.standard_normal((n, bases.shape[2])).astype(np.float32) / np.sqrt(bases.shape[2])
    noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    out = centres[labels] + 0.6 * np.einsum("nr,ndr->nd", z, bases[labels]) + 0.15 * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def collection(cbir_home: Path) -> Iterator[dict]:
    """20k synthetic vectors under one model, loaded with COPY; its index is built by the tests (cbir index)."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((20, DIM, 16)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=1, keepdims=True)
    data = clustered_unit_vectors(N, rng, centres, bases)
    queries = clustered_unit_vectors(QUERIES, rng, centres, bases)
    url = db.database_url()
    with db.connect(url) as conn:
        model = ensure_model(conn, NAME, "vector", DIM, "cosine", {"source": "synthetic"})
        conn.execute(f"DROP INDEX {indexes.index_name(model)}")  # bulk load first, index after (cbir index)
        with conn.cursor() as cur:
            with cur.copy(
                "COPY images (sha256, path, category, width, height, format, bytes, thumbnail) FROM STDIN"
            ) as cp:
                for i in range(N):
                    cp.write_row((f"{i:064x}", f"/synthetic/{i}.jpg", f"c{i % 7}", 1, 1, "JPEG", 1, b""))
            ids = [r[0] for r in cur.execute("SELECT id FROM images ORDER BY id").fetchall()]
            with cur.copy("COPY embeddings (image_id, model_id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "int4", "vector"])
                for image_id, vector in zip(ids, data, strict=True):
                    cp.write_row((image_id, model.id, vector))
        conn.execute("ANALYZE embeddings")
        truth = np.argsort(-(queries @ data.T), axis=1)[:, :K]
        yield {"url": url, "ids": np.array(ids), "queries": queries, "truth": truth}


def _model(url: str) -> Model:
    with db.connect(url) as conn:
        model = get_model(conn, NAME)
    assert model is not None
    return model


def _plan(conn: psycopg.Connection, model: Model, vector: np.ndarray) -> str:
    query, params = nearest_query(model, vector, K)
    with conn.transaction():
        conn.execute("SET LOCAL hnsw.ef_search = 200")
        rows = conn.execute(psycopg.sql.SQL("EXPLAIN ") + query, params).fetchall()
    return "\n".join(r[0] for r in rows)


def _recall(conn: psycopg.Connection, model: Model, data: dict) -> float:
    found = [[h.id for h in nearest(conn, model, q, k=K)] for q in data["queries"]]
    truth = data["ids"][data["truth"]]
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("index_type", ["vector", "halfvec", "bit-rerank"])
def test_each_index_type_is_used_and_keeps_recall(collection: dict, index_type: str) -> None:
    url = collection["url"]
    facts = indexes.rebuild(url, _model(url), IndexChoice(index_type))
    assert (facts.type, facts.m, facts.ef_construction, facts.building) == (index_type, 16, 64, False)
    assert facts.bytes and facts.bytes > 0
    model = _model(url)
    assert model.index_choice.type == index_type  # recorded in the models row
    q = collection["queries"][0]
    index_scan = f"Index Scan using {indexes.index_name(model)} on embeddings e"
    with db.connect(url) as conn:
        assert index_scan in _plan(conn, model, q)  # the product's query
        image = int(collection["ids"][0])
        sql_plan = "\n".join(r[0] for r in conn.execute("SELECT * FROM cbir_neighbors_plan(%s, 10, %s)", (image, NAME)))
        assert index_scan in sql_plan  # the SQL functions the console's examples call
        recall = _recall(conn, model, collection)
        stored = conn.execute("SELECT embedding FROM embeddings WHERE image_id = %s", (image,)).fetchone()[0]
        by_sql = [r[0] for r in conn.execute("SELECT image_id FROM cbir_neighbors(%s, 10, %s)", (image, NAME))]
        by_api = [h.id for h in nearest(conn, model, stored.to_numpy(), k=11) if h.id != image][:10]
    assert recall >= 0.95, (index_type, recall)
    assert len(set(by_sql) & set(by_api)) >= 9, (by_sql, by_api)  # the same search from SQL and from Python


def test_search_keeps_working_while_the_index_is_rebuilt(collection: dict) -> None:
    """Searches are answered while the new index is being built, and after the swap, without an error.

    An open writer's transaction holds the concurrent build at its wait for writers, so the searches counted
    in `on_progress` run while the build is under way however fast the machine is; then the writer commits.
    """
    url = collection["url"]
    errors: list[str] = []
    answered = [0]
    progress = threading.Condition()
    stop = threading.Event()

    def search_loop() -> None:
        with db.connect(url) as conn:
            while not stop.is_set():
                try:
                    hits = nearest(conn, _model_in(conn), collection["queries"][answered[0] % QUERIES], k=K)
                    assert len(hits) == K
                except Exception as exc:  # any failure is what this test looks for
                    errors.append(f"{type(exc).__name__}: {exc}")
                with progress:
                    answered[0] += 1
                    progress.notify_all()

    def wait_for_answers(more: int) -> None:
        with progress:
            target = answered[0] + more
            assert progress.wait_for(lambda: answered[0] >= target, timeout=120), "the searches stopped"

    phases: list[str] = []
    with db.connect(url) as writer:
        writer.execute("BEGIN")
        writer.execute("LOCK TABLE embeddings IN ROW EXCLUSIVE MODE")  # as an ingest's open transaction would

        def during_the_build(done: int, total: int) -> None:
            with db.connect(url) as conn:
                phase = conn.execute("SELECT phase FROM pg_stat_progress_create_index").fetchone()
            if phases or phase is None or phase[0] == "initializing":
                return  # searched already, or not yet at the wait
            phases.append(phase[0])
            wait_for_answers(5)
            writer.execute("COMMIT")  # the build goes on

        loop = threading.Thread(target=search_loop, daemon=True)
        loop.start()
        try:
            wait_for_answers(1)
            choice = IndexChoice("halfvec", m=24, ef_construction=64)
            facts = indexes.rebuild(url, _model(url), choice, on_progress=during_the_build, poll_seconds=0.05)
            wait_for_answers(5)  # on the new index
        finally:
            stop.set()
            loop.join(30)
    assert not errors, errors[:3]
    assert phases == ["waiting for writers before build"]  # the five searches ran while the build waited
    assert (facts.type, facts.m, facts.building) == ("halfvec", 24, False)


def _model_in(conn: psycopg.Connection) -> Model:
    model = get_model(conn, NAME)
    assert model is not None
    return model


def test_cbir_index_and_db_status_show_the_choice(collection: dict) -> None:
    proc = run_cli("index", "--model", NAME, "--type", "vector", "--m", "8", "--ef-construction", "32", check=True)
    assert "HNSW vector (m 8, ef_construction 32)" in proc.stdout, proc.stdout
    status = run_cli("db", "status", check=True).stdout
    line = next(line for line in status.splitlines() if "HNSW" in line and "m 8," in line)
    assert line.strip().startswith("index:") and line.strip().endswith("MB"), line


@pytest.mark.parametrize(
    ("model", "choice", "says"),
    [
        (Model(1, "phash", "bit", 64, "hamming"), IndexChoice("halfvec"), "--type does not apply"),
        (Model(1, "pixels-umap", "vector", 16, "l2"), IndexChoice("bit-rerank"), "bit-rerank quantizes unit vectors"),
        (Model(1, "m", "vector", 384), IndexChoice("ivfflat"), "--type must be one of vector, halfvec, bit-rerank"),
        (Model(1, "m", "vector", 384), IndexChoice("vector", m=1), "--m must be between 2 and 100"),
        (Model(1, "m", "vector", 384), IndexChoice("vector", m=32, ef_construction=40), "between 64 (twice --m)"),
        (Model(1, "m", "vector", 3000), IndexChoice("vector"), "at most 2000 dimensions as vector"),
    ],
)
def test_choices_the_index_cannot_have_are_one_line_errors(model: Model, choice: IndexChoice, says: str) -> None:
    with pytest.raises(BadArgument, match=re.escape(says)):
        indexes.check_choice(model, choice)
