"""The Inspector page through Streamlit's AppTest, over stored `cbir eval` results of real photos.

phash is a real (weak) model; the tiny DINOv2 is random and only gives the page a second model to compare.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import caltech_files
from support.apptest import labelled, page

from cbir.analysis.evaluate import evaluate
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
