"""Helpers shared by the tests: real Caltech-101 files, the CLI as a user runs it, generated bad inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def cli_setting_error(tmp_path: Path, name: str, value: str) -> str:
    """What `cbir ingest` prints when the setting `name` is `value`, after checking it exits with code 2.

    Settings are read when used, not at import: the error comes from the command, before any file is read."""
    image = tmp_path / "x.jpg"
    image.write_bytes(b"not read")
    proc = run_cli("ingest", str(image), "--model", "phash", env=os.environ | {name: value, "CBIR_HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    return proc.stderr.strip()
