"""Shared fixtures: a real embedded Postgres per test module, a tiny random DINOv2, real Caltech-101 files.

Nothing here mocks the database, the model loading path or the file system: tests run the code users run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may wait on the network
os.environ.pop("CBIR_DATABASE_URL", None)
os.environ.pop("CBIR_MODEL", None)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CBIR_CACHE for the whole session (subprocesses inherit it): each model converts to OpenVINO once per
    session, not once per test home, and nothing is written to the user's own cache."""
    path = tmp_path_factory.mktemp("model-cache")
    os.environ["CBIR_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised DINOv2 (tiny), saved in Hugging Face format: its numbers mean nothing."""
    from cbir.embedders.random_model import save_random_dinov2

    return str(save_random_dinov2(tmp_path_factory.mktemp("tiny-dinov2"), size="tiny"))


def _fresh_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from cbir.storage import db, embedded

    home = Path(tmp_path_factory.mktemp("home"))
    old = os.environ.get("CBIR_HOME")
    os.environ["CBIR_HOME"] = str(home)
    db.pool.cache_clear()
    try:
        yield home
    finally:
        db.pool.cache_clear()
        embedded.stop()
        if old is None:
            os.environ.pop("CBIR_HOME", None)
        else:
            os.environ["CBIR_HOME"] = old


@pytest.fixture(scope="module")
def cbir_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh CBIR_HOME (and so a fresh embedded database) shared by one test module."""
    yield from _fresh_home(tmp_path_factory)


@pytest.fixture
def fresh_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh CBIR_HOME for one test that needs an empty database."""
    yield from _fresh_home(tmp_path_factory)
