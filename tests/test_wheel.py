"""The installed package, not the clone: build the wheel, install it into a fresh virtualenv outside the clone,
and run the README's commands from an empty folder (ingest, search, db status/url/stop, eval, dupes, project,
serve + Chromium).

The fresh virtualenv takes its third-party dependencies from the test's own environment through a .pth
line (downloading torch, transformers and streamlit again would take many minutes and is pip's job, not
ours); cbir itself comes only from the wheel, which is what this test is about: a clone-only file that the
commands need would make it fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from support import ROOT, caltech_files
from support.browser import chromium, free_port, running

PHOTOS = {"elephant": 6, "rhino": 6}


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the freshly built cbir wheel installed (returns its bin folder)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("cbir-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("cbir/storage/migrations/") and n.endswith(".sql") for n in names), names
    assert "cbir/dashboard/app.py" in names and "cbir/dashboard/app_pages/map.py" in names
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    return venv / "bin"


def cbir(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(bin_dir / "cbir"), *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"cbir {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_installed_wheel_runs_every_command(installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "work"
    empty.mkdir()
    os.environ["CBIR_HOME"] = str(tmp_path / "home")  # the children inherit it
    try:
        where = subprocess.run(
            [str(installed / "python"), "-c", "import cbir.storage.migrate as m; print(m.__file__)"],
            cwd=empty,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert not where.startswith(str(ROOT)), f"cbir was imported from the clone: {where}"
        photos = [str(p) for c, n in PHOTOS.items() for p in caltech_files(c, n)]
        cbir(installed, empty, "ingest", *photos, "--model", "phash")
        hits = json.loads(cbir(installed, empty, "search", photos[0], "-k", "3", "--json").stdout)
        assert len(hits) == 3 and all(h["path"] != photos[0] for h in hits)
        status = cbir(installed, empty, "db", "status").stdout
        assert "001_images_and_embeddings.sql" in status and "images:     12" in status
        assert json.loads(cbir(installed, empty, "eval", "--model", "phash", "--json").stdout)["queries"] == 12
        assert "groups" in json.loads(cbir(installed, empty, "dupes", "--json").stdout)
        assert "projected 12 images" in cbir(installed, empty, "project", "--n-neighbors", "5").stdout
        assert cbir(installed, empty, "db", "url").stdout.startswith("postgresql://")
        module = subprocess.run(
            [str(installed / "python"), "-m", "cbir", "--help"], cwd=empty, capture_output=True, text=True
        )
        assert module.returncode == 0 and "ingest" in module.stdout
        port = free_port()
        command = [str(installed / "cbir"), "serve", "--port", str(port), "--no-open"]
        with running(command, port, tmp_path / "serve.log", cwd=empty) as (url, _), chromium() as browser:
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("cbir: reverse image search").wait_for()
            page.get_by_text("Images").first.wait_for()
            assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == "12"
        cbir(installed, empty, "db", "stop")
    finally:
        os.environ.pop("CBIR_HOME", None)
