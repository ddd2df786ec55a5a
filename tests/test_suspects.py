"""Images in the wrong folder (`cbir suspects`): real Caltech-101 photos under the genuine efficientnet-lite0, with
a few photos of one category planted in another's folder; the vote by hand; the stored run as SQL sees it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import caltech_files, make_subset, run_cli

from cbir.analysis.suspects import representativeness, suspects, vote
from cbir.errors import QueryRefused
from cbir.indexing.ingest import ingest
from cbir.storage import console, db, staleness
from cbir.storage import suspects as stored
from cbir.storage.models import get_model

MODEL = "efficientnet-lite0"
CATEGORIES = {"airplanes": 12, "Motorbikes": 12, "Faces_easy": 12, "Leopards": 12, "sunflower": 12, "watch": 12}
# (true category, folder it is planted in): photos not otherwise in the subset, so new bytes
PLANTS = [("Leopards", "airplanes"), ("sunflower", "Motorbikes"), ("airplanes", "watch"), ("Motorbikes", "Faces_easy")]


@pytest.fixture(scope="module")
def planted(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The subset ingested with 4 planted photos; planted path -> the category it really shows."""
    root = make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)
    found = {}
    for n, (true, folder) in enumerate(PLANTS):
        src = caltech_files(true, CATEGORIES[true] + 1 + n)[-1]
        dest = root / folder / f"planted-{true}-{src.name}"
        shutil.copy(src, dest)
        found[str(dest)] = true
    ingest([root], MODEL, progress=False)
    yield found
    console.reader_pool().close()  # before the module's server stops under it
    console._reader_pool.cache_clear()


def test_planted_photos_rank_first_with_their_true_folder_suggested(planted: dict[str, str]) -> None:
    report = suspects(MODEL, top=len(planted), recompute=True, progress=False)
    top = {r.path: r for r in report.rows}
    assert set(top) == set(planted), f"top {len(planted)}: {[(r.path, r.score) for r in report.rows]}"
    assert all(top[p].suggested == true for p, true in planted.items())
    assert all(top[p].score > 0.5 and top[p].support > 0.5 for p in planted)
    for row in report.rows:  # the evidence: neighbours of the suggested folder, nearest first
        evidence = report.evidence(row)
        assert evidence and all(e["category"] == row.suggested for e in evidence)
        assert [e["distance"] for e in evidence] == sorted(e["distance"] for e in evidence)
    assert report.run.images == sum(CATEGORIES.values()) + len(planted) and not report.reused


def test_stored_neighbours_match_an_exact_scan_and_leave_out_near_copies(planted: dict[str, str]) -> None:
    from cbir.distances import distance_block
    from cbir.storage import collection

    report = suspects(MODEL, top=1000, progress=False)
    assert report.reused  # nothing changed since the previous test's run
    with db.connect() as conn:
        model = get_model(conn, MODEL)
        ids, _, vectors = collection.model_vectors(conn, model)
    d = distance_block(vectors, vectors, "cosine")
    np.fill_diagonal(d, np.inf)
    row = {int(i): n for n, i in enumerate(ids)}
    for r in report.rows:
        exact = [int(ids[j]) for j in np.argsort(d[row[r.id]]) if d[row[r.id], j] > 0.05][: report.run.k]
        assert r.neighbours == exact and all(x > 0.05 for x in r.distances)
        assert r.uniqueness == pytest.approx(np.sort(d[row[r.id]])[report.run.k - 1], abs=1e-4)


def test_cli_reuses_a_fresh_run_and_scores_again_after_a_change(planted: dict[str, str], tmp_path: Path) -> None:
    out = json.loads(run_cli("suspects", "--model", MODEL, "--top", "3", "--json", check=True).stdout)
    assert out["reused"] and len(out["suspects"]) == 3 and out["suspects"][0]["path"] in planted
    assert out["suspects"][0]["evidence"][0]["category"] == out["suspects"][0]["suggested"]
    text = run_cli("suspects", "--top", "4", check=True).stdout
    assert "reused stored run" in text and all(Path(p).name in text for p in planted)
    extra = tmp_path / "watch" / caltech_files("watch", 20)[-1].name
    extra.parent.mkdir()
    shutil.copy(caltech_files("watch", 20)[-1], extra)
    with db.connect() as conn:
        before = stored.latest_run(conn, get_model(conn, MODEL))
    ingest([extra], MODEL, progress=False)
    with db.connect() as conn:
        assert staleness.stale_suspects(conn, before.id).added == 1
    again = json.loads(run_cli("suspects", "--top", "1", "--json", check=True).stdout)
    assert not again["reused"] and again["run"]["id"] > before.id and again["run"]["images"] == before.images + 1


def test_scores_are_sql_columns_the_reader_can_select(planted: dict[str, str]) -> None:
    result = console.run_readonly(
        "SELECT i.path, s.score, s.suggested, s.uniqueness, s.representativeness FROM suspect_scores s"
        " JOIN images i ON i.id = s.image_id WHERE s.run_id = (SELECT max(id) FROM suspect_runs)"
        " ORDER BY s.score DESC LIMIT 4"
    )
    assert {r[0] for r in result.rows} == set(planted)
    with pytest.raises(QueryRefused):
        console.run_readonly("DELETE FROM suspect_scores")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model"], "no embeddings for model 'no-such-model'"),
        (["--top", "0"], "--top must be at least 1"),
        (["--k", "0"], "--k must be at least 1"),
        (["--sort", "size"], "--sort must be one of score, uniqueness, representativeness"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(planted: dict[str, str], args: list[str], message: str) -> None:
    with db.connect() as conn:
        runs = len(stored.latest_runs(conn)), stored.latest_run(conn, get_model(conn, MODEL))
    proc = run_cli("suspects", *args)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr
    with db.connect() as conn:
        assert (len(stored.latest_runs(conn)), stored.latest_run(conn, get_model(conn, MODEL))) == runs


def test_an_empty_collection_is_one_line(fresh_home: Path) -> None:
    proc = run_cli("suspects", env=os.environ | {"CBIR_HOME": str(fresh_home)})
    assert proc.returncode == 2 and proc.stderr.startswith("cbir: error: no embeddings for model"), proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_vote_by_hand() -> None:
    """Image 0 (category 0) has neighbours 1, 1, 0 with weights 0.5, 0.3, 0.2; image 1 (1) has 1, 1, -1."""
    labels = np.array([0, 1, -1])
    neighbour_labels = np.array([[1, 1, 0], [1, 1, -1], [0, 1, 1]])
    weights = np.array([[0.5, 0.3, 0.2], [0.6, 0.4, 0.9], [0.1, 0.1, 0.2]])
    score, suggested, support = vote(labels, neighbour_labels, weights, 2)
    np.testing.assert_allclose(score, [0.8, 0.0, 0.0])
    assert suggested.tolist() == [1, -1, 1]
    np.testing.assert_allclose(support, [0.8, 0.0, 0.3 / 0.4])


def test_representativeness_is_the_cosine_to_the_others_centroid() -> None:
    vectors = np.array([[1, 0], [0.8, 0.6], [0.8, -0.6], [0, 1]], dtype=np.float32)
    typical = representativeness(np.array([0, 0, 0, 1]), vectors, "cosine")
    side = 1.08 / np.hypot(1.8, 0.6)  # (0.8, 0.6) . (1.8, -0.6) over the norms
    np.testing.assert_allclose(typical[:3], [1.0, side, side], atol=1e-6)
    assert np.isnan(typical[3])  # alone in its category
