"""The dashboard's pages through Streamlit's AppTest, on a real embedded Postgres with real Caltech-101 photos.

The tiny model is random: these tests check that the pages work, never what the neighbours are worth.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support import caltech_files
from support.apptest import figures, labelled, page, submit_sql, texts, values

from cbir.analysis import projection
from cbir.dashboard import charts
from cbir.indexing.ingest import ingest
from cbir.storage import db, projections

CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}


@pytest.fixture(scope="module")
def populated(cbir_home: Path, tiny_model: str) -> dict[str, list[Path]]:
    files = {c: caltech_files(c, n) for c, n in CATEGORIES.items()}
    ingest([f for fs in files.values() for f in fs], tiny_model, batch_size=8, progress=False)
    return files


def test_empty_collection_says_what_to_do(fresh_home: Path) -> None:
    home = page("home")
    assert "The collection is empty" in texts(home)
    assert "cbir ingest" in texts(home)
    assert str(fresh_home) in texts(home)  # where the data lives
    search = page("search")
    assert "Nothing to search yet" in texts(search)


def test_home_summarises_the_collection(populated) -> None:
    at = page("home")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "24" and metrics["Categories"] == "3" and metrics["Models"] == "1"
    categories = at.dataframe[1].value
    assert sorted(categories["category"]) == ["airplanes", "elephant", "rhino"]
    assert list(categories["images"]) == [8, 8, 8]


def test_upload_query_shows_results_and_precision(populated) -> None:
    new_elephant = caltech_files("elephant", 12)[-1]  # not in the collection
    at = page("search")
    at.file_uploader[0].upload(new_elephant.name, new_elephant.read_bytes(), "image/jpeg")
    labelled(at.selectbox, "Its category, if known (for precision@k)").set_value("elephant")
    at.slider[0].set_value(5)
    at.run()
    assert not at.exception and not at.error, texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Results"] == "5"
    assert metrics["Query category"] == "elephant"
    precision = float(metrics["precision@5"])
    assert 0.0 <= precision <= 1.0
    captions = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(captions) == 5
    stored = {str(f) for fs in populated.values() for f in fs}
    assert all(c.split("\n")[-1] in stored for c in captions)  # every hit shows a stored path
    assert at.session_state["last_answer"].image_id is None
    (curve,) = figures(at)["distances"]["data"]  # each result's distance by rank, its own kind in green
    assert values(curve["x"]) == [1, 2, 3, 4, 5]
    assert [f"{d:.4f}" for d in values(curve["y"])] == [c.split(" · ")[1] for c in captions]
    green = [colour == charts.SAME for colour in curve["marker"]["color"]]
    assert green == ["elephant" in c.split("\n")[0] for c in captions]


def test_upload_of_a_stored_image_knows_its_category_and_leaves_it_out(populated) -> None:
    rhino = populated["rhino"][0]
    at = page("search")
    at.file_uploader[0].upload(rhino.name, rhino.read_bytes(), "image/jpeg")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Query category"] == "rhino"
    assert "precision@10" in metrics
    paths = [c.value.split("\n")[-1] for c in at.caption if c.value.startswith("#")]
    assert len(paths) == 10 and str(rhino) not in paths


def test_bad_upload_is_one_clear_error(populated) -> None:
    at = page("search")
    at.file_uploader[0].upload("notes.jpg", b"this is not an image\n", "image/jpeg")
    at.run()
    assert [e.value for e in at.error] == [at.error[0].value]
    assert "not a usable image" in at.error[0].value
    assert not at.exception


def test_stored_image_query_with_category_filter(populated) -> None:
    at = page("search")
    at.radio[0].set_value("Stored image").run()
    labelled(at.selectbox, "Category").set_value("airplanes").run()
    labelled(at.selectbox, "Only category").set_value("rhino").run()
    assert not at.exception and not at.error, texts(at)
    captions = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(captions) == 8 and all("rhino" in c.split("\n")[0] for c in captions)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Query category"] == "airplanes"
    assert not any(label.startswith("precision@") for label in metrics)  # meaningless under a filter


def test_map_without_a_projection_offers_to_fit_on_request(populated) -> None:
    at = page("map")
    assert "No map yet" in texts(at) and "cbir project" in texts(at)
    assert at.button[0].label.startswith("Fit the map now")
    assert not figures(at)
    at.button[0].click().run()  # fits here, on request only (auto: 5, 10 and 15 neighbours for 24 images)
    assert not at.exception, [e.value for e in at.exception]
    main, trust = figures(at).values()  # the map, then the trustworthiness curve
    assert sum(len(values(t["x"])) for t in main["data"]) == 24 and values(trust["data"][0]["x"]) == [5, 10, 15]


@pytest.fixture(scope="module")
def mapped(populated) -> projections.Projection:
    with db.connect() as conn:
        return projection.project(conn, n_neighbors=5, progress=False)


def test_map_shows_every_image_coloured_by_category(mapped) -> None:
    at = page("map")
    main, trust = figures(at).values()  # the map, then the trustworthiness curve
    assert all(t["type"] == "scattergl" and len(values(t["x"])) == 8 for t in main["data"])
    assert len({t["marker"]["color"] for t in main["data"]}) == 3  # one colour per category
    assert not any("text" in t for t in main["data"])  # no per-point text: hover names the category
    assert [d["name"] for d in main["data"]] == ["airplanes · 8", "elephant · 8", "rhino · 8"]  # no query yet
    assert values(trust["data"][0]["x"]) == [5]
    assert "24 images, UMAP n_neighbors=5" in texts(at)
    labelled(at.selectbox, "n_neighbors").set_value(10)
    next(b for b in at.button if b.label.startswith("Refit now")).click().run()
    assert "24 images, UMAP n_neighbors=10" in texts(at)
    labelled(at.selectbox, "n_neighbors").set_value(5)
    next(b for b in at.button if b.label.startswith("Refit now")).click().run()  # as the fixture left it


def test_map_highlights_the_latest_query_and_its_neighbours(mapped) -> None:
    new_rhino = caltech_files("rhino", 12)[-1]  # not stored: placed among its neighbours
    at = page("search")
    at.file_uploader[0].upload(new_rhino.name, new_rhino.read_bytes(), "image/jpeg")
    at.slider[0].set_value(4)
    at.run()
    hits = at.session_state["last_answer"].hits
    at.switch_page("app_pages/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    main = figures(at)["map"]
    traces = {d["name"]: d for d in main["data"]}
    assert set(traces) == {"airplanes · 8", "elephant · 8", "rhino · 8", "neighbours", "query"}
    assert len(values(traces["neighbours"]["x"])) == len(hits) == 4
    xs = [x for t in main["data"][:3] for x in values(t["x"])]
    ys = [y for t in main["data"][:3] for y in values(t["y"])]
    qx, qy = values(traces["query"]["x"])[0], values(traces["query"]["y"])[0]
    assert min(xs) - 1 <= qx <= max(xs) + 1 and min(ys) - 1 <= qy <= max(ys) + 1  # on the map, not elsewhere


def run_sql(text: str) -> AppTest:
    at = submit_sql(page("sql"), text)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_sql_example_runs_as_a_table_with_csv_download(populated) -> None:
    at = page("sql")
    labelled(at.selectbox, "Example").set_value("Category centroids and their distances").run()
    assert "avg(e.embedding)" in at.session_state["sql_text"]  # what the editor shows
    submit_sql(at, at.session_state["sql_text"])
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table.columns) == ["category_a", "category_b", "cosine_distance"] and len(table) == 3  # 3 pairs
    csv = at.get("download_button")[0]
    assert csv.proto.label == "Download CSV"


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM images", "WITH gone AS (DELETE FROM images RETURNING id) SELECT count(*) FROM gone"],
)
def test_sql_write_is_refused_with_an_error(populated, statement: str) -> None:
    at = run_sql(statement)
    assert len(at.error) == 1 and ("not allowed" in at.error[0].value or "refused" in at.error[0].value)
    assert not at.dataframe
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 24  # nothing lost
