"""The core end to end: ingest real Caltech-101 photos into the embedded Postgres, then search them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from psycopg import sql
from support import caltech_files, make_subset, run_cli

from cbir.retrieval.search import search
from cbir.storage import collection as stored
from cbir.storage import db, models
from cbir.storage.models import resolve_model
from cbir.storage.neighbours import nearest, nearest_query

CATEGORIES = {"elephant": 10, "rhino": 10, "airplanes": 10, "helicopter": 10, "Leopards": 10}


@pytest.fixture(scope="module")
def collection(cbir_home: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 categories x 10 real photos, one byte-identical copy under another name, and two bad files."""
    root = make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)
    shutil.copy(root / "elephant" / "image_0001.jpg", root / "rhino" / "copy_of_elephant.jpg")
    good = (root / "airplanes" / "image_0001.jpg").read_bytes()
    (root / "airplanes" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "helicopter" / "notes.jpg").write_text("this is not an image\n")
    return root


@pytest.fixture(scope="module")
def first_run(collection: Path, tiny_model: str) -> subprocess.CompletedProcess:
    return run_cli("ingest", str(collection), "--model", tiny_model, "--batch-size", "8")


def test_ingest_stores_each_distinct_image_once(first_run, collection: Path) -> None:
    assert first_run.returncode == 3, first_run.stderr  # 3: finished, some files skipped
    with db.connect() as conn:
        counts = stored.counts(conn)
        aliases = conn.execute(
            "SELECT count(*) FROM image_paths p JOIN images i ON i.id = p.image_id WHERE p.path <> i.path"
        ).fetchone()[0]
        copy_category = conn.execute(
            "SELECT i.category FROM image_paths p JOIN images i ON i.id = p.image_id WHERE p.path LIKE %s",
            ("%copy_of_elephant.jpg",),
        ).fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id)"
        ).fetchone()[0]
    assert counts["images"] == 50  # the copy is not a new image
    assert counts["paths"] == 51  # ... but its path is recorded as an alias
    assert aliases == 1 and copy_category == "elephant"
    assert counts["categories"] == 5
    assert counts["models"][0]["embeddings"] == 50 and orphans == 0


def test_corrupt_files_are_skipped_with_reasons(first_run) -> None:
    out = first_run.stdout
    assert "skipped 2 files" in out
    assert "truncated.jpg: cannot decode" in out
    assert "notes.jpg: not an image" in out
    assert "Traceback" not in first_run.stderr


def test_rerun_embeds_nothing_new(first_run, collection: Path, tiny_model: str) -> None:
    again = run_cli("ingest", str(collection), "--model", tiny_model)
    assert "embedded 0 images" in again.stdout and "51 already embedded" in again.stdout
    clean = run_cli("ingest", str(collection / "elephant"), "--model", tiny_model, check=True)
    assert clean.stdout.startswith("nothing new to embed: all 10 files already stored")
    with db.connect() as conn:
        assert stored.counts(conn)["images"] == 50


def test_search_cli_json_leaves_query_out(first_run, collection: Path, tiny_model: str) -> None:
    query = collection / "elephant" / "image_0002.jpg"
    proc = run_cli("search", str(query), "-k", "5", "--json", check=True)
    hits = json.loads(proc.stdout)
    assert len(hits) == 5
    assert set(hits[0]) >= {"id", "path", "category", "distance"}
    assert all(h["path"] != str(query) for h in hits)
    distances = [h["distance"] for h in hits]
    assert distances == sorted(distances)
    # by id too, and the id of the query image is never among its results
    with db.connect() as conn:
        query_id = conn.execute("SELECT image_id FROM image_paths WHERE path = %s", (str(query),)).fetchone()[0]
    by_id = json.loads(run_cli("search", str(query_id), "-k", "5", "--json", check=True).stdout)
    assert [h["id"] for h in by_id] == [h["id"] for h in hits]
    assert query_id not in [h["id"] for h in by_id]


def test_search_matches_exact_ranking(first_run, collection: Path) -> None:
    """HNSW results agree with a brute-force numpy ranking over the stored vectors."""
    with db.connect() as conn:
        model = resolve_model(conn, None)
        rows = conn.execute("SELECT image_id, embedding FROM embeddings WHERE model_id = %s", (model.id,)).fetchall()
        ids = np.array([r[0] for r in rows])
        vectors = np.stack([r[1].to_numpy() for r in rows])
        hits = nearest(conn, model, vectors[0], k=10, exclude=[int(ids[0])])
    distances = 1 - vectors[1:] @ vectors[0]
    expected = ids[1:][np.argsort(distances)[:10]]
    assert len(set(h.id for h in hits) & set(expected.tolist())) >= 9
    np.testing.assert_allclose([h.distance for h in hits], np.sort(distances)[:10], atol=1e-5)


@pytest.fixture
def synthetic(fresh_home: Path) -> tuple:
    """4,000 random unit vectors in 40 categories: enough rows for the planner to prefer the HNSW index."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    thumb = b"\xff\xd8\xff\xd9"
    images = [
        stored.NewImage(f"{i:064x}", f"/synthetic/{i}.jpg", f"c{i % 40}", 1, 1, "JPEG", 1, thumb) for i in range(4000)
    ]
    with db.connect() as conn:
        model = models.ensure_model(conn, "synthetic-64", "vector", 64, "cosine", {})
        for start in range(0, 4000, 1000):
            stored.write_batch(conn, model, images[start : start + 1000], vectors[start : start + 1000], [])
        conn.execute("ANALYZE")
    return model, vectors


def _plan(conn, model, vector, k=10, category=None, exclude=None) -> str:
    query, params = nearest_query(model, vector, k, category, exclude)
    return "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + query, params))


def test_query_uses_hnsw_index_with_its_operator_class(synthetic) -> None:
    model, vectors = synthetic
    with db.connect() as conn:
        opclass = conn.execute(
            "SELECT opc.opcname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " JOIN pg_opclass opc ON opc.oid = x.indclass[0] WHERE c.relname = %s",
            (f"embeddings_hnsw_model_{model.id}",),
        ).fetchone()[0]
        plan = _plan(conn, model, vectors[0])
        excluding_plan = _plan(conn, model, vectors[0], exclude=[1])
    assert opclass == "vector_cosine_ops" and model.operator.as_string() == "<=>"
    index_scan = f"Index Scan using embeddings_hnsw_model_{model.id} on embeddings e"
    assert index_scan in plan, plan
    assert "Order By: ((embedding)::vector(64) <=> " in plan, plan
    assert index_scan in excluding_plan, excluding_plan


def test_category_filter_returns_k_rows_through_iterative_scan(synthetic) -> None:
    """With ef_search=10, HNSW alone yields ~10 candidates of which ~1 is in the category; iterative scans go on."""
    model, vectors = synthetic
    k = 20  # each category holds 100 images
    force_hnsw = ("SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_sort = off")
    with db.connect() as conn:
        # Here the planner would rather sort the 100 rows of the category (exact, also k rows); force the HNSW
        # path, which it takes for larger categories, to check what happens on that path.
        with conn.transaction():
            for statement in force_hnsw:
                conn.execute(statement)
            conn.execute("SET LOCAL hnsw.ef_search = 10")
            conn.execute("SET LOCAL hnsw.iterative_scan = off")
            assert "Index Scan using embeddings_hnsw" in _plan(conn, model, vectors[0], k, category="c7")
            query, params = nearest_query(model, vectors[0], k, category="c7")
            without = conn.execute(query, params).fetchall()
        with conn.transaction():
            for statement in force_hnsw:
                conn.execute(statement)
            hits = nearest(conn, model, vectors[0], k=k, category="c7", ef_search=10)
    members = np.arange(7, 4000, 40)
    exact = set(members[np.argsort(1 - vectors[members] @ vectors[0])[:k]].tolist())
    assert len(without) < k  # the failure iterative scans exist for: most of the ef_search candidates filtered out
    assert len(hits) == k and {h.category for h in hits} == {"c7"}
    recall = len(exact & {int(Path(h.path).stem) for h in hits}) / k
    assert recall >= 0.9


def test_python_api_is_what_the_cli_calls(first_run, collection: Path) -> None:
    hits = search(str(collection / "rhino" / "image_0003.jpg"), k=3, category="elephant")
    assert len(hits) == 3 and all(h.category == "elephant" for h in hits)


def test_two_models_coexist(first_run, collection: Path, tmp_path: Path) -> None:
    """A second model of another dimension gets its own index; searches pick the model asked for."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    other = tmp_path / "other-model"
    config = Dinov2Config(hidden_size=48, num_hidden_layers=1, num_attention_heads=2, intermediate_size=96)
    Dinov2Model(config).save_pretrained(other)
    BitImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}).save_pretrained(other)
    run_cli("ingest", str(collection / "elephant"), "--model", str(other), check=True)
    with db.connect() as conn:
        dims = sorted(m.dim for m in models.list_models(conn))
        hits = search(str(collection / "elephant" / "image_0001.jpg"), k=3, model=str(other), conn=conn)
    assert dims == [32, 48]
    assert len(hits) == 3 and all(h.category == "elephant" for h in hits)


def test_missing_model_fails_fast_with_clear_message(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    shutil.copy(caltech_files("elephant", 1)[0], tmp_path / "img")
    for model in ("facebook/dinov2-small", str(tmp_path / "no-such-dir"), str(tmp_path / "img")):
        start = time.monotonic()
        proc = run_cli("ingest", str(tmp_path / "img"), "--model", model, timeout=60)
        assert time.monotonic() - start < 30
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "CBIR_MODEL" in proc.stderr, proc.stderr


def test_resume_after_kill_9(fresh_home: Path, tiny_model: str) -> None:
    """kill -9 mid-ingest leaves whole batches only; a re-run ends with exactly one row per image."""
    folder = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "caltech101" / "airplanes"
    total = len(caltech_files("airplanes", 10_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cbir", "ingest", str(folder), "--model", tiny_model, "--batch-size", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with db.connect() as conn:
            deadline = time.monotonic() + 120
            while conn.execute("SELECT count(*) FROM images").fetchone()[0] < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            partial = conn.execute("SELECT count(*) FROM images").fetchone()[0]
            assert 20 <= partial < total, "the ingest must be killed mid-way for this test to mean anything"
            assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == partial  # whole batches
    finally:
        if proc.poll() is None:
            proc.kill()
    rerun = run_cli("ingest", str(folder), "--model", tiny_model, check=True)
    assert f"{partial} already embedded" in rerun.stdout
    with db.connect() as conn:
        images, distinct, embeddings, paths = conn.execute(
            "SELECT (SELECT count(*) FROM images), (SELECT count(DISTINCT sha256) FROM images),"
            " (SELECT count(*) FROM embeddings), (SELECT count(*) FROM image_paths)"
        ).fetchone()
    assert images == distinct == embeddings == paths == total


def test_migrations_are_idempotent(first_run) -> None:
    from cbir.storage.migrate import apply_migrations

    with db.connect() as conn:
        assert apply_migrations(conn) == []
        versions = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert versions >= 1


def test_db_commands(first_run) -> None:
    url = run_cli("db", "url", check=True).stdout.strip()
    assert url.startswith("postgresql://") and url == db.database_url()
    status = run_cli("db", "status", check=True).stdout
    assert "pgvector 0.8" in status and "images:     50" in status
