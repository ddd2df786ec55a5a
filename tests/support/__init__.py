"""Helpers shared by the tests: real Caltech-101 files, the CLI as a user runs it, generated bad inputs."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

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


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    """The bytes of `img` saved as `fmt` (Pillow's format name) with Pillow's save options."""
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 180) -> None:
    """Poll `ready` until it holds; `proc` (if given) must still be running meanwhile. The timeout only bounds a
    hang: what a test asserts is the condition, never how long it took."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc is None or proc.poll() is None, f"the process ended ({proc.returncode}) before it was ready"
        assert time.monotonic() < deadline, f"not ready after {timeout} s"
        time.sleep(0.01)


def collection_state() -> dict[str, set]:
    """The collection without ids or times, what two runs must agree on, after checking the invariants every
    run keeps after any fault: one row per distinct image, each with a path, an embedding and a decodable
    thumbnail. "images": (sha256, path, category, width, height, format, bytes, thumbnail md5); "paths":
    (path, sha256); "vectors": (sha256, model, the vector or bits as text)."""
    from cbir.storage import db

    with db.connect() as conn:
        duplicated, pathless, unembedded = conn.execute(
            "SELECT (SELECT count(*) - count(DISTINCT sha256) FROM images),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM image_paths p WHERE p.image_id = i.id)),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id))"
        ).fetchone()
        images = conn.execute(
            "SELECT sha256, path, category, width, height, format, bytes, thumbnail FROM images"
        ).fetchall()
        paths = conn.execute("SELECT p.path, i.sha256 FROM image_paths p JOIN images i ON i.id = p.image_id").fetchall()
        vectors = conn.execute(
            "SELECT i.sha256, m.name, coalesce(e.bits::text, e.embedding::text) FROM embeddings e"
            " JOIN images i ON i.id = e.image_id JOIN models m ON m.id = e.model_id"
        ).fetchall()
    assert duplicated == pathless == unembedded == 0, (duplicated, pathless, unembedded)
    assert not [r[0] for r in images if not _decodes(bytes(r[7]))], "thumbnails that do not decode"
    return {
        "images": {(*r[:7], hashlib.md5(bytes(r[7])).hexdigest()) for r in images},
        "paths": set(paths),
        "vectors": set(vectors),
    }


def _decodes(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).load()
    except Exception:  # any failure to decode is what is counted
        return False
    return True
