"""Shared fixtures: a real embedded Postgres per test module, a tiny random DINOv2, real Caltech-101 files.

Nothing here mocks the database, the model loading path or the file system: tests run the code users run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may wait on the network
os.environ.pop("CBIR_DATABASE_URL", None)
os.environ.pop("CBIR_MODEL", None)

ROOT = Path(__file__).resolve().parent.parent
CALTECH = ROOT.parent / "shared" / "datasets" / "caltech101"


def caltech_files(category: str, n: int) -> list[Path]:
    """The first n files of a Caltech-101 category (the dataset must be present: tests need real photos)."""
    folder = CALTECH / category
    assert folder.is_dir(), f"Caltech-101 not found at {CALTECH}; see ../shared/datasets/README.md"
    return sorted(p for p in folder.iterdir() if p.is_file())[:n]


def make_subset(dest: Path, categories: dict[str, int]) -> Path:
    """Copy a few real images per category into dest/<category>/ (tests may add bad files beside them)."""
    for category, n in categories.items():
        (dest / category).mkdir(parents=True, exist_ok=True)
        for src in caltech_files(category, n):
            shutil.copy(src, dest / category / src.name)
    return dest


def run_cli(*args: str, check: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m cbir ...` exactly as a user would, with this process's environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "cbir", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cbir {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised DINOv2 (tiny), saved in Hugging Face format: its numbers mean nothing."""
    from cbir.random_model import save_random_dinov2

    return str(save_random_dinov2(tmp_path_factory.mktemp("tiny-dinov2"), size="tiny"))


def _fresh_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from cbir import db

    home = Path(tmp_path_factory.mktemp("home"))
    old = os.environ.get("CBIR_HOME")
    os.environ["CBIR_HOME"] = str(home)
    db.pool.cache_clear()
    try:
        yield home
    finally:
        db.pool.cache_clear()
        db.stop_embedded()
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
