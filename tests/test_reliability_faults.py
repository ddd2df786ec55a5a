"""Faults during ingest: a killed client, a stopped or killed database, concurrent runs, a broken data directory.

Each test checks the same invariants afterwards: one row per distinct image, an embedding and a decodable
thumbnail for every image, every file's path recorded, nothing half-written.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from support import CALTECH, caltech_files, make_subset, run_cli

from cbir.errors import CbirError
from cbir.indexing.ingest import display_path, ingest
from cbir.retrieval.search import search
from cbir.storage import console, db, embedded
from cbir.storage.console import run_readonly


def ingest_cmd(model: str, *folders: Path, batch_size: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cbir",
        "ingest",
        *map(str, folders),
        "--model",
        model,
        "--batch-size",
        str(batch_size),
    ]


def state() -> dict:
    """Counts that must agree after any fault, and every path recorded."""
    with db.connect() as conn:
        images, distinct, embeddings, orphans, pathless = conn.execute(
            "SELECT (SELECT count(*) FROM images), (SELECT count(DISTINCT sha256) FROM images),"
            " (SELECT count(*) FROM embeddings),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id)),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM image_paths p WHERE p.image_id = i.id))"
        ).fetchone()
        thumbs = [bytes(r[0]) for r in conn.execute("SELECT thumbnail FROM images")]
        paths = {r[0] for r in conn.execute("SELECT path FROM image_paths")}
    bad_thumbs = 0
    for thumb in thumbs:
        try:
            Image.open(io.BytesIO(thumb)).load()
        except Exception:
            bad_thumbs += 1
    assert images == distinct == embeddings, (images, distinct, embeddings)
    assert orphans == pathless == bad_thumbs == 0, (orphans, pathless, bad_thumbs)
    return {"images": images, "paths": paths}


def wait_for_rows(at_least: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    with db.connect() as conn:
        deadline = time.monotonic() + timeout
        while conn.execute("SELECT count(*) FROM images").fetchone()[0] < at_least:
            assert proc.poll() is None, "the ingest ended before the fault could be injected"
            assert time.monotonic() < deadline
            time.sleep(0.01)


def files_of(*folders: Path) -> set[str]:
    return {display_path(p) for folder in folders for p in folder.iterdir() if p.is_file()}


def distinct_images(*folders: Path) -> int:
    return len({p.read_bytes() for folder in folders for p in folder.iterdir() if p.is_file()})


def test_kill_9_mid_ingest_then_rerun(cbir_home: Path, tiny_model: str) -> None:
    folders = [CALTECH / "crocodile"]  # read in place: 50 real photos
    proc = subprocess.Popen(ingest_cmd(tiny_model, *folders), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_rows(6, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = state()["images"]
    assert 6 <= partial < len(files_of(*folders))
    run_cli("ingest", *map(str, folders), "--model", tiny_model, check=True)
    after = state()
    assert after["paths"] == files_of(*folders) and after["images"] == distinct_images(*folders)


def test_database_stopped_mid_ingest(cbir_home: Path, tiny_model: str) -> None:
    folders = [CALTECH / "hedgehog", CALTECH / "accordion"]
    before = state()["images"]
    proc = subprocess.Popen(ingest_cmd(tiny_model, *folders), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_rows(before + 4, proc)
        assert embedded.stop()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("cbir:")]  # the rest is the progress bar
    assert len(errors) == 1 and stderr.strip().endswith(errors[0]), stderr
    assert f"lost the connection to the embedded database in {cbir_home / 'pgdata'}" in stderr
    assert "run the command again" in stderr
    state()  # connecting starts the server again; whole batches only
    rerun = run_cli("ingest", *map(str, folders), "--model", tiny_model, check=True)
    assert "embedded" in rerun.stdout
    assert files_of(*folders) <= state()["paths"]


def test_killed_server_restarts_on_next_use(cbir_home: Path) -> None:
    pool = db.pool()
    with pool.connection() as conn:
        images = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    assert run_readonly("SELECT count(*) FROM images").rows == [(images,)]  # opens the SQL console's pool
    pid = int((cbir_home / "pgdata" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    status = run_cli("db", "status", timeout=120)
    assert status.returncode == 0, status.stderr
    assert f"images:     {images} " in status.stdout
    with pool.connection() as conn:  # the dashboard's pool drops dead connections and reconnects
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == images
    assert run_readonly("SELECT count(*) FROM images").rows == [(images,)]  # and the console's
    pool.close()
    db.pool.cache_clear()
    console.reader_pool().close()
    console._reader_pool.cache_clear()


def test_overlapping_ingests_at_once(fresh_home: Path, tiny_model: str, tmp_path: Path) -> None:
    root = make_subset(tmp_path, {"emu": 15, "bass": 15, "beaver": 15})
    a, b, c = root / "emu", root / "bass", root / "beaver"
    runs = [
        subprocess.Popen(
            ingest_cmd(tiny_model, *pair, batch_size=4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for pair in ((a, b), (b, c))
    ]
    outputs = [run.communicate(timeout=240) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0 and "Traceback" not in stderr, stdout + stderr
    after = state()
    assert after["paths"] == files_of(a, b, c)
    assert after["images"] == distinct_images(a, b, c)


def test_corrupted_then_missing_data_directory(fresh_home: Path, tiny_model: str, tmp_path: Path) -> None:
    pgdata = fresh_home / "pgdata"
    db.database_url()
    assert embedded.stop()
    control = pgdata / "global" / "pg_control"
    control.write_bytes(os.urandom(100))  # as a full disk or a bad copy would leave it
    broken = run_cli("db", "status")
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1, broken.stderr
    assert f"cannot start the embedded database in {pgdata}" in broken.stderr
    assert "pg_control" in broken.stderr and "move that folder away" in broken.stderr
    # The documented recovery: move the folder away (now it is missing), then ingest again.
    shutil.move(pgdata, tmp_path / "pgdata.broken")
    query = caltech_files("emu", 1)[0]
    with pytest.raises(CbirError, match="run cbir ingest first"):
        search(query, model=tiny_model)  # a fresh, empty database
    ingest([CALTECH / "emu"], tiny_model, progress=False)
    assert state()["paths"] == files_of(CALTECH / "emu")
    assert len(search(query, k=3, model=tiny_model)) == 3
