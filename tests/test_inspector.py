"""The Inspector page through Streamlit's AppTest, over stored `cbir eval` results of real photos.

phash is a real (weak) model; the tiny DINOv2 is random and only gives the page a second model to compare.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support import caltech_files
from support.apptest import figures, labelled, page

from cbir.analysis.evaluate import evaluate
from cbir.dashboard.charts import clicked_pair
from cbir.indexing.ingest import ingest
from cbir.storage import db
from cbir.storage import evaluations as inspector

CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}


@pytest.fixture(scope="module")
def ingested(cbir_home: Path) -> None:
    files = [f for c, n in CATEGORIES.items() for f in caltech_files(c, n)]
    ingest(files, "phash", progress=False)


@pytest.fixture(scope="module")
def evaluated(ingested, tiny_model: str) -> None:
    files = [f for c, n in CATEGORIES.items() for f in caltech_files(c, n)]
    ingest(files, tiny_model, progress=False)
    evaluate(["phash", tiny_model], progress=False)


def test_without_results_the_page_says_what_to_run(ingested) -> None:
    at = page("inspector")
    assert "cbir eval" in at.info[0].value


def test_categories_worst_first_and_pairs_of_one_category(evaluated) -> None:
    at = page("inspector")
    table = at.dataframe[1].value
    assert sorted(table["category"]) == sorted(CATEGORIES)
    assert list(table["map"]) == sorted(table["map"])
    labelled(at.selectbox, "Model").set_value(next(o for o in labelled(at.selectbox, "Model").options if "phash" in o))
    at.run()
    labelled(at.selectbox, "Queries of category").set_value("elephant").run()
    assert not at.exception
    pairs = at.dataframe[2].value
    assert set(pairs["category"]) == {"elephant"} and list(pairs["neighbours"]) == sorted(pairs["neighbours"])[::-1]
    other = pairs["other"].iloc[0]
    wrong = [c.value for c in at.caption if c.value.startswith("#")]
    assert wrong and all(f" {other}, d=" in c for c in wrong)
    assert any(c.value.startswith("query (elephant)") for c in at.caption)


def test_examples_are_stored_wrong_neighbours(evaluated) -> None:
    with db.connect() as conn:
        run = next(r for r in inspector.latest_runs(conn) if r.model == "phash")
        top = inspector.confusions(conn, run.id, category="rhino")[0]
        examples = inspector.examples(conn, run.id, "rhino", top["other"], limit=100)
        categories = dict(conn.execute("SELECT id, category FROM images").fetchall())
    assert sum(len(e.wrong) for e in examples) == top["neighbours"]
    assert len(examples) == top["queries"]
    assert all(categories[e.query_id] == "rhino" for e in examples)
    assert all(categories[i] == top["other"] and 1 <= rank <= run.k for e in examples for i, rank, _ in e.wrong)


def test_compare_two_models(evaluated, tiny_model: str) -> None:
    at = page("inspector")
    compare = labelled(at.selectbox, "Compare with")
    compare.set_value(compare.options[1]).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 4  # overall and macro of both models
    table = at.dataframe[1].value
    assert {"map A", "map B"} <= set(table.columns) and len(table) == len(CATEGORIES)
    models = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(models) == 2
    _, *groups = figures(at)["inspector_compare"]["data"]  # the diagonal, then B's wins, A's wins, ties
    assert sum(len(g["x"]) for g in groups) == len(CATEGORIES)
    b_wins, a_wins, ties = groups
    assert all(y > x for x, y in zip(b_wins["x"], b_wins["y"], strict=True))
    assert all(y < x for x, y in zip(a_wins["x"], a_wins["y"], strict=True))
    stored = {(r["category"], m): r[f"map {m}"] for _, r in table.iterrows() for m in "AB"}
    drawn = {(c, m): v for g in groups for m in "AB" for c, v in zip(g["text"], g["xy"[m == "B"]], strict=True)}
    assert drawn == pytest.approx(stored)


def phash_page() -> AppTest:
    at = page("inspector")
    model = labelled(at.selectbox, "Model")
    model.set_value(next(o for o in model.options if "phash" in o)).run()
    assert not at.exception
    return at


def test_confusion_chart_draws_the_stored_shares(evaluated) -> None:
    at = phash_page()
    cells, own, ring = figures(at)["inspector_confusion"]["data"]
    with db.connect() as conn:
        run = next(r for r in inspector.latest_runs(conn) if r.model == "phash")
        stored = {(p["category"], p["other"]): p["rate"] for p in inspector.confusions(conn, run.id)}
        precision = {c["category"]: c["precision_at_10"] for c in inspector.categories(conn, run.id)}
    drawn = {(a, b): rate for a, b, rate in zip(cells["y"], cells["x"], cells["marker"]["color"], strict=True)}
    assert drawn == pytest.approx(stored)  # 3 categories: every confused pair is a cell
    assert all(data[:2] == [a, b] for data, a, b in zip(cells["customdata"], cells["y"], cells["x"], strict=True))
    assert run.k == 10 and {data[0]: data[2] for data in own["customdata"]} == pytest.approx(precision)
    assert (ring["y"][0], ring["x"][0]) == labelled(at.selectbox, "Pair").value  # the pair whose examples show


def test_the_pair_box_starts_on_the_most_confused_pair(evaluated) -> None:
    at = page("inspector")
    pairs = at.dataframe[2].value  # most wrong neighbours first
    ring = figures(at)["inspector_confusion"]["data"][2]
    assert (ring["y"][0], ring["x"][0]) == labelled(at.selectbox, "Pair").value
    assert labelled(at.selectbox, "Pair").value == (pairs["category"].iloc[0], pairs["other"].iloc[0])


def test_the_ring_follows_the_pair_picked_below(evaluated) -> None:
    at = phash_page()
    pairs = at.dataframe[2].value
    second = (pairs["category"].iloc[1], pairs["other"].iloc[1])
    labelled(at.selectbox, "Pair").set_value(second).run()
    ring = figures(at)["inspector_confusion"]["data"][2]
    assert (ring["y"][0], ring["x"][0]) == labelled(at.selectbox, "Pair").value == second
    labelled(at.selectbox, "Queries of category").set_value("rhino").run()
    assert not at.exception
    chosen = labelled(at.selectbox, "Pair").value
    assert chosen[0] == "rhino"
    ring = figures(at)["inspector_confusion"]["data"][2]
    assert (ring["y"][0], ring["x"][0]) == chosen


def test_per_category_bars_are_sorted_and_follow_the_metric(evaluated) -> None:
    at = phash_page()
    table = at.dataframe[1].value
    for metric in ("precision_at_1", "map"):
        labelled(at.radio, "Bars").set_value(metric).run()
        bars = figures(at)["inspector_bar_chart"]["data"][0]
        assert bars["y"] == sorted(bars["y"]) and sorted(bars["x"]) == sorted(CATEGORIES)
        stored = dict(zip(table["category"], table[metric], strict=True))
        assert dict(zip(bars["x"], bars["y"], strict=True)) == pytest.approx(stored)


def test_a_click_on_a_cell_is_its_pair_and_the_diagonal_is_none() -> None:
    own = {"customdata": ["rhino", "rhino", 0.4], "curve_number": 1}
    cell = {"customdata": ["elephant", "rhino", 3], "curve_number": 0}
    assert clicked_pair([own, cell]) == ("elephant", "rhino")
    assert clicked_pair([own]) is None and clicked_pair([]) is None
