"""Every error a user can cause on a page is one line (st.error), never a traceback: too few images for a map,
a model that cannot be loaded, a stopped database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import caltech_files
from support.apptest import page, texts
from support.browser import free_port

from cbir.embedders import get_embedder
from cbir.indexing.ingest import ingest
from cbir.storage import db

PAGES = ("home", "search", "map", "inspector", "duplicates", "sql")


def one_line_error(at, *expected: str) -> str:
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1, texts(at)
    message = at.error[0].value
    assert "\n" not in message.strip() and "Traceback" not in message
    assert all(part in message for part in expected), message
    return message


def test_a_map_of_too_few_images_is_one_line(fresh_home: Path) -> None:
    ingest(caltech_files("elephant", 3), "phash", progress=False)
    at = page("map")
    next(b for b in at.button if b.label.startswith("Fit the map now")).click().run()
    one_line_error(at, "a map needs at least 4 images", "found 3")


def test_a_model_that_cannot_be_loaded_is_one_line(fresh_home: Path, tiny_model: str, tmp_path: Path) -> None:
    moved = shutil.copytree(tiny_model, tmp_path / "model")
    ingest(caltech_files("rhino", 4), str(moved), progress=False)
    shutil.rmtree(moved)  # the model directory is gone; stored vectors stay searchable by id
    get_embedder.cache_clear()
    at = page("search")
    new = caltech_files("rhino", 6)[-1]
    at.file_uploader[0].upload(new.name, new.read_bytes(), "image/jpeg").run()
    one_line_error(at, "model", str(moved))


@pytest.mark.parametrize("name", PAGES)
def test_a_stopped_database_is_one_line_on_every_page(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/cbir?connect_timeout=2"  # bound, released: nothing there
    monkeypatch.setenv("CBIR_DATABASE_URL", dead)
    monkeypatch.setenv("CBIR_READER_URL", dead)
    db.pool.cache_clear()
    at = page(name)  # the SQL page reads its schema browser from the database on load
    one_line_error(at, "127.0.0.1")
