"""The dashboard's pages through Streamlit's AppTest, on a real embedded Postgres with real Caltech-101 photos.

The tiny model is random: these tests check that the pages work, never what the neighbours are worth.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, caltech_files
from streamlit.testing.v1 import AppTest

from cbir.ingest import ingest

APP = str(ROOT / "streamlit_app.py")
CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}
TIMEOUT = 120  # the first run of a page loads torch and the model


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if name != "home":
        at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def labelled(widgets, label: str):
    """The widget with this label (pages lay widgets out in columns, so positions are not stable)."""
    return next(w for w in widgets if w.label == label)


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


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
