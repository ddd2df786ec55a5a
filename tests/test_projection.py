"""`cbir project`: UMAP maps stored in the database, scored by trustworthiness, and new queries placed on them.

One UMAP compile per test process (~40 s) is the cost; the maps use 24 real photos and the tiny random model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from support import caltech_files, run_cli

from cbir.analysis import projection
from cbir.indexing.ingest import ingest
from cbir.storage import collection, db, projections
from cbir.storage.models import resolve_model

CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}


@pytest.fixture(scope="module")
def fitted(cbir_home: Path, tiny_model: str) -> projections.Projection:
    files = [f for c, n in CATEGORIES.items() for f in caltech_files(c, n)]
    ingest(files, tiny_model, batch_size=8, progress=False)
    with db.connect() as conn:
        return projection.project(conn, n_neighbors="auto", progress=False)


def test_auto_tries_each_n_neighbors_and_keeps_the_most_trustworthy(fitted: projections.Projection) -> None:
    assert sorted(fitted.scores) == [5, 10, 15]  # the grid values below 24 images
    assert fitted.n_neighbors == max(fitted.scores, key=fitted.scores.get)
    assert all(0.0 <= s <= 1.0 for s in fitted.scores.values())
    assert fitted.images == 24 and fitted.min_dist == 0.0
    assert fitted.params["n_components"] == 2 and fitted.params["random_state"] == projection.SEED


def test_stored_score_matches_an_independent_trustworthiness(fitted: projections.Projection) -> None:
    with db.connect() as conn:
        model = resolve_model(conn, None)
        ids, _, vectors = collection.model_vectors(conn, model)
        points = projections.points(conn, fitted.id)
    assert np.array_equal(points.ids, ids)  # every embedded image is on the map, once
    coords = np.column_stack([points.x, points.y])
    expected = trustworthiness(vectors, coords, n_neighbors=5)  # 24 points: the sample is all of them
    assert fitted.scores[fitted.n_neighbors] == pytest.approx(expected, abs=1e-5)


def test_reducer_round_trip_places_a_stored_image_at_its_own_point(fitted: projections.Projection) -> None:
    with db.connect() as conn:
        model = resolve_model(conn, None)
        ids, _, vectors = collection.model_vectors(conn, model)
        points = projections.points(conn, fitted.id)
        reducer = projections.load_reducer(conn, fitted.id)  # unpickled from the database
    coords = np.column_stack([points.x, points.y])
    for row in (0, 12, 23):
        x, y = projection.place(reducer, vectors[row])
        gaps = np.linalg.norm(coords - (x, y), axis=1)
        # transform is approximate for a random model's 24 points: its own point must be among the nearest quarter
        assert (gaps < gaps[row]).sum() < len(coords) // 4, (row, gaps[row], np.sort(gaps)[:6])


def test_refit_replaces_the_map(fitted: projections.Projection) -> None:
    with db.connect() as conn:
        again = projection.project(conn, n_neighbors=6, progress=False)
        assert list(again.scores) == [6] and again.n_neighbors == 6
        assert projections.latest(conn, again.model).id == again.id != fitted.id
        left = conn.execute("SELECT count(*), count(DISTINCT projection_id) FROM projection_points").fetchone()
    assert left == (24, 1)


def test_cli_rejects_bad_n_neighbors_in_one_line(fitted: projections.Projection) -> None:
    for value, message in (("many", "must be 'auto' or a whole number"), ("24", "between 2 and 23")):
        proc = run_cli("project", "--n-neighbors", value)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_hash_model_maps_with_hamming(fitted: projections.Projection) -> None:
    """Bit-string models (phash) are mapped too; runs last: a second model changes the default model."""
    files = [f for c, n in CATEGORIES.items() for f in caltech_files(c, n)]
    ingest(files, "phash", progress=False)
    with db.connect() as conn:
        mapped = projection.project(conn, "phash", n_neighbors=5, progress=False)
        ids, _, bits = collection.model_vectors(conn, resolve_model(conn, "phash"))
        reducer = projections.load_reducer(conn, mapped.id)
    assert mapped.metric == "hamming" and mapped.images == 24
    assert bits.dtype == np.bool_ and bits.shape == (24, 64)
    assert all(np.isfinite(projection.place(reducer, bits[0])))
