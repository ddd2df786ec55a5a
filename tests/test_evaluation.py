"""Retrieval metrics against scikit-learn and hand computation; the confusion ranking; `cbir eval` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from support import make_subset, run_cli

from cbir.analysis.evaluate import Ranking, confusions, metric_keys, rank_leave_one_out
from cbir.distances import distance_block
from cbir.indexing.ingest import ingest
from cbir.metrics import average_precision, precision_at_k
from cbir.retrieval.search import search
from cbir.storage import db

CATEGORIES = {"elephant": 8, "rhino": 8, "Faces_easy": 8}


def test_full_ranking_ap_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(5, 60))
        truth = rng.random(n) < rng.uniform(0.1, 0.6)
        truth[rng.integers(n)] = True
        scores = rng.random(n)  # continuous: no ties
        ranked = truth[np.argsort(-scores)][None, :]
        assert average_precision(ranked)[0] == pytest.approx(average_precision_score(truth, scores))


def test_metrics_on_a_hand_computed_case() -> None:
    ranked = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=bool)
    n_relevant = np.array([3, 1])  # the first query has a third relevant image ranked beyond these five
    np.testing.assert_allclose(precision_at_k(ranked, 1), [1, 0])
    np.testing.assert_allclose(precision_at_k(ranked, 5), [0.4, 0.2])
    np.testing.assert_allclose(average_precision(ranked, n_relevant, k=2), [(1 / 1) / 2, 0])
    np.testing.assert_allclose(average_precision(ranked, n_relevant, k=5), [(1 + 2 / 3) / 3, (1 / 5) / 1])
    np.testing.assert_allclose(average_precision(ranked, n_relevant), [(1 + 2 / 3) / 3, 1 / 5])
    np.testing.assert_allclose(average_precision(ranked), [(1 + 2 / 3) / 2, 1 / 5])
    with pytest.raises(ValueError, match="k must be between"):
        precision_at_k(ranked, 6)


def test_distances_match_each_metric() -> None:
    rng = np.random.default_rng(2)
    bits = rng.random((6, 64)) < 0.5
    np.testing.assert_array_equal(distance_block(bits[:2], bits, "hamming"), (bits[:2, None] != bits[None]).sum(-1))
    x = rng.normal(size=(6, 5)).astype(np.float32)
    expected_l2 = np.linalg.norm(x[:2, None] - x[None], axis=-1)
    np.testing.assert_allclose(distance_block(x[:2], x, "l2"), expected_l2, atol=1e-5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(distance_block(x[:2], x, "cosine"), 1 - unit[:2] @ unit.T, atol=1e-6)


def test_leave_one_out_on_points_on_a_line() -> None:
    """Category 0 at 0..10, category 1 at 100..110: every query's neighbours are its own category first."""
    points = np.concatenate([np.arange(11), np.arange(100, 111)]).astype(np.float32)[:, None]
    labels = np.array([0] * 11 + [1] * 11)
    ranking = rank_leave_one_out(labels, points, "l2", k=10, queries=np.arange(22))
    np.testing.assert_allclose(ranking.scores, 1.0)  # all five metrics perfect
    assert (labels[ranking.neighbours] == labels[:, None]).all()
    assert not (ranking.neighbours == np.arange(22)[:, None]).any()  # never the query itself
    np.testing.assert_allclose(ranking.distances[0, :3], [1, 2, 3])


def test_confusion_ranking_on_a_hand_made_case() -> None:
    names = ["ant", "bee", "cat"]
    labels = np.array([0, 0, 0, 1, 1, 2, 2, -1])  # the last image has no category
    neighbours = np.array(
        [
            [1, 3],  # ant query: ant, bee
            [3, 4],  # ant query: bee, bee
            [5, 7],  # ant query: cat, unlabelled
            [4, 0],  # bee query: bee, ant
            [3, 6],  # bee query: bee, cat
            [6, 3],  # cat query: cat, bee
            [5, 4],  # cat query: cat, bee
        ]
    )
    ranking = Ranking(np.arange(7), np.zeros((7, 5)), neighbours, np.zeros((7, 2)))
    pairs = confusions(labels, ranking, names)
    ranked = [(p["category"], p["other"], p["neighbours"], p["queries"]) for p in pairs]
    assert ranked == [
        ("ant", "bee", 3, 2),
        ("cat", "bee", 2, 2),
        ("bee", "ant", 1, 1),  # ties on count: the higher rate first (bee has 2 queries, ant 3)
        ("bee", "cat", 1, 1),
        ("ant", "cat", 1, 1),
    ]
    ant_bee = pairs[0]
    assert ant_bee["rate"] == pytest.approx(3 / (3 * 2))
    assert ant_bee["lift"] == pytest.approx((3 / 6) / (2 / 7))  # bee holds 2 of the 7 other images


@pytest.fixture(scope="module")
def collection(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    root = make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)
    ingest([root], "phash", progress=False)
    ingest([root], tiny_model, progress=False)
    return root


def test_eval_json_shape_and_storage(collection: Path) -> None:
    proc = run_cli("eval", "--model", "phash", "--json", check=True)
    report = json.loads(proc.stdout)
    keys = metric_keys(10)
    assert keys == ["precision@1", "precision@5", "precision@10", "mAP@10", "mAP"]
    assert report["model"] == "phash" and report["queries"] == report["images"] == 24
    assert set(report["overall"]) == set(report["macro"]) == set(keys)
    assert sorted(c["category"] for c in report["categories"]) == sorted(CATEGORIES)
    assert all(set(keys) <= set(c) and c["queries"] == 8 for c in report["categories"])
    for key in keys:
        assert 0 <= report["overall"][key] <= 1
        assert report["macro"][key] == pytest.approx(np.mean([c[key] for c in report["categories"]]))
    assert {"category", "other", "neighbours", "queries", "rate", "lift"} <= set(report["confusions"][0])
    with db.connect() as conn:
        run = conn.execute(
            "SELECT k, queries, overall FROM evaluation_runs WHERE id = %s", (report["run_id"],)
        ).fetchone()
        stored = conn.execute(
            "SELECT (SELECT count(*) FROM evaluation_categories WHERE run_id = %(r)s),"
            " (SELECT count(*) FROM evaluation_neighbours WHERE run_id = %(r)s),"
            " (SELECT count(*) FROM evaluation_confusions WHERE run_id = %(r)s)",
            {"r": report["run_id"]},
        ).fetchone()
    assert run[:2] == (10, 24) and run[2] == report["overall"]
    assert stored == (3, 24 * 10, report["confused_pairs"]) and len(report["confusions"]) <= 10


def test_eval_neighbours_match_the_index_search(collection: Path, tiny_model: str) -> None:
    """The exact in-memory ranking finds the neighbours the database's search finds (random model: plumbing only)."""
    reports = json.loads(run_cli("eval", "--model", tiny_model, "--model", "phash", "--json", check=True).stdout)
    assert [r["model"] for r in reports][1] == "phash" and len(reports) == 2
    with db.connect() as conn:
        query_id, neighbours = conn.execute(
            "SELECT query_id, array_agg(image_id ORDER BY rank) FROM evaluation_neighbours"
            " WHERE run_id = %s GROUP BY query_id ORDER BY query_id LIMIT 1",
            (reports[0]["run_id"],),
        ).fetchone()
        hits = search(query_id, k=10, model=tiny_model, conn=conn)
    assert [h.id for h in hits] == neighbours


def test_eval_sample_and_bad_model(collection: Path) -> None:
    sampled = json.loads(run_cli("eval", "--model", "phash", "--queries", "5", "--json", check=True).stdout)
    assert sampled["queries"] == 5 and sampled["images"] == 24
    bad = run_cli("eval", "--model", "no-such-model")
    assert bad.returncode == 2 and "no-such-model" in bad.stderr and "Traceback" not in bad.stderr
