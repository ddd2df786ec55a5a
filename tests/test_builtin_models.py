"""The built-in models on real photos: phash (bit(64), Hamming, HNSW) and pixels-umap (fitted on the collection).

UMAP compiles for about a minute on first use, so pixels-umap is fitted once for the module, in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image
from psycopg import sql
from support import caltech_files, encode, make_subset, run_cli

from cbir.embedders.pixels_umap import N_COMPONENTS, reducer_path
from cbir.errors import CbirError
from cbir.indexing.ingest import ingest
from cbir.retrieval.search import search
from cbir.storage import db, models
from cbir.storage.models import resolve_model
from cbir.storage.neighbours import nearest_query

CATEGORIES = {"elephant": 12, "rhino": 12, "airplanes": 12}
FORCE_INDEX = ("SET LOCAL enable_seqscan = off", "SET LOCAL enable_sort = off")  # tiny tables: planner would sort


@pytest.fixture(scope="module")
def collection(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)


@pytest.fixture(scope="module")
def umap_report(collection: Path):
    return ingest([collection], model="pixels-umap", progress=False)


def _plan(model: models.Model, vector: np.ndarray) -> str:
    query, params = nearest_query(model, vector, 5, exclude=[1])
    with db.connect() as conn, conn.transaction():
        for statement in FORCE_INDEX:
            conn.execute(statement)
        return "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + query, params))


def test_phash_ingest_and_hamming_search(collection: Path) -> None:
    run_cli("ingest", str(collection), "--model", "phash", check=True)
    query = collection / "elephant" / "image_0001.jpg"
    hits = json.loads(run_cli("search", str(query), "--model", "phash", "-k", "5", "--json", check=True).stdout)
    assert len(hits) == 5 and all(h["path"] != str(query) for h in hits)
    distances = [h["distance"] for h in hits]
    assert distances == sorted(distances) and all(d == int(d) for d in distances)
    # Hamming distances agree with ImageHash's own comparison of the two hashes
    expected = imagehash.phash(Image.open(query).convert("RGB")) - imagehash.phash(
        Image.open(hits[0]["path"]).convert("RGB")
    )
    assert distances[0] == expected


def test_phash_query_uses_bit_hamming_index() -> None:
    with db.connect() as conn:
        model = resolve_model(conn, "phash")
    assert (model.kind, model.dim, model.operator.as_string()) == ("bit", 64, "<~>")
    plan = _plan(model, np.zeros(64, dtype=bool))
    assert f"Index Scan using embeddings_hnsw_model_{model.id}" in plan, plan
    assert "Order By: ((bits)::bit(64) <~> " in plan, plan


def test_pixels_umap_fits_on_the_whole_collection(umap_report) -> None:
    n = sum(CATEGORIES.values())
    assert umap_report.embedded == n and umap_report.fitted == n
    assert reducer_path().is_file()
    with db.connect() as conn:
        model = resolve_model(conn, "pixels-umap")
        stored = conn.execute("SELECT count(*) FROM embeddings WHERE model_id = %s", (model.id,)).fetchone()[0]
        info = conn.execute("SELECT info FROM models WHERE id = %s", (model.id,)).fetchone()[0]
    assert stored == n and (model.dim, model.metric) == (N_COMPONENTS, "l2")
    assert info["fitted_on"] == n and info["min_dist"] == 0.0
    assert 0.5 < info["trustworthiness"]["score"] <= 1 and info["trustworthiness"]["sample"] == n
    plan = _plan(model, np.zeros(N_COMPONENTS, dtype=np.float32))
    assert f"Index Scan using embeddings_hnsw_model_{model.id}" in plan, plan
    assert f"Order By: ((embedding)::vector({N_COMPONENTS}) <-> " in plan, plan


def test_pixels_umap_rerun_does_not_refit(umap_report, collection: Path) -> None:
    again = ingest([collection], model="pixels-umap", progress=False)
    assert again.embedded == 0 and again.fitted == 0


def test_pixels_umap_uploaded_image_round_trip(umap_report, collection: Path) -> None:
    """An unseen upload is transformed by the saved reducer; a stored photo's pixels land on its own place."""
    unseen = caltech_files("Leopards", 1)[0].read_bytes()
    hits = search(unseen, k=5, model="pixels-umap")
    assert len(hits) == 5 and [h.distance for h in hits] == sorted(h.distance for h in hits)

    path = collection / "airplanes" / "image_0003.jpg"
    with db.connect() as conn:
        own_id = conn.execute("SELECT image_id FROM image_paths WHERE path = %s", (str(path),)).fetchone()[0]
    stored_neighbours = {h.id for h in search(own_id, k=10, model="pixels-umap")}
    assert {h.id for h in search(path.read_bytes(), k=10, model="pixels-umap")} == stored_neighbours
    transformed = search(encode(Image.open(path).convert("RGB"), "PNG"), k=11, model="pixels-umap")  # not stored
    assert own_id in [h.id for h in transformed[:3]]
    assert len({h.id for h in transformed} & stored_neighbours) >= 6


def test_pixels_umap_needs_enough_images(fresh_home: Path, collection: Path) -> None:
    with pytest.raises(CbirError, match="needs at least"):
        ingest([collection / "elephant"], model="pixels-umap", progress=False)
    with db.connect() as conn:  # the inputs are kept: a later, larger ingest fits on them too
        assert conn.execute("SELECT count(*) FROM model_inputs").fetchone()[0] == CATEGORIES["elephant"]


def test_pixels_umap_refits_after_a_crash_before_the_fit(umap_report, collection: Path) -> None:
    """Inputs stored but no vectors (killed between the last batch and the fit): the next run fits."""
    with db.connect() as conn:
        model = resolve_model(conn, "pixels-umap")
        conn.execute("DELETE FROM embeddings WHERE model_id = %s", (model.id,))
    again = ingest([collection], model="pixels-umap", progress=False)
    assert again.embedded == 0 and again.fitted == sum(CATEGORIES.values())
    with db.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM embeddings WHERE model_id = %s", (model.id,)).fetchone()[0]
    assert stored == sum(CATEGORIES.values())
