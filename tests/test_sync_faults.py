"""Faults during `cbir sync`: killed with kill -9 (twice) and re-run, and two syncs at once.

A sync of a few hundred real photos (phash, small transactions so the kills land mid-way) is killed, re-run
to the end, and compared row by row (ids and times aside) with an uninterrupted sync of the same folders
from the same starting collection, in a second database.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from support import caltech_files, make_subset, run_cli

from cbir.indexing.ingest import display_path
from cbir.storage import db, embedded, locks, staleness

MODEL = "phash"
SMALL = ("--batch-size", "2", "--change-batch", "3")


@contextlib.contextmanager
def home(path: Path) -> Iterator[dict[str, str]]:
    """Point this process at another CBIR_HOME for a while; yields the environment for subprocesses."""
    old = os.environ["CBIR_HOME"]
    os.environ["CBIR_HOME"] = str(path)
    try:
        yield dict(os.environ)
    finally:
        os.environ["CBIR_HOME"] = old


def state() -> dict[str, set]:
    """The collection without ids or times: what two runs must agree on, and the invariants every run keeps."""
    with db.connect() as conn:
        pathless, unembedded = conn.execute(
            "SELECT (SELECT count(*) FROM images i"
            " WHERE NOT EXISTS (SELECT 1 FROM image_paths p WHERE p.image_id = i.id)),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id))"
        ).fetchone()
        images = conn.execute(
            "SELECT sha256, path, category, width, height, format, bytes, thumbnail FROM images"
        ).fetchall()
        paths = conn.execute("SELECT p.path, i.sha256 FROM image_paths p JOIN images i ON i.id = p.image_id").fetchall()
        vectors = conn.execute(
            "SELECT i.sha256, m.name, e.bits::text FROM embeddings e JOIN images i ON i.id = e.image_id"
            " JOIN models m ON m.id = e.model_id"
        ).fetchall()
    assert pathless == unembedded == 0, (pathless, unembedded)
    return {
        "images": {(*r[:7], hashlib.md5(bytes(r[7])).hexdigest()) for r in images},
        "paths": set(paths),
        "vectors": set(vectors),
    }


def change_tree(
    root: Path,
    deleted: int = 40,
    moved: int = 40,
    renamed: int = 20,
    added: dict[str, int] | None = None,
    lamps: int = 8,
) -> None:
    """Delete emu photos, move bass photos into beaver, rename crab photos, add new folders of photos (`added`:
    folder -> count) and lamp photos into crab (real Caltech-101 files). The default: delete 40, move 40,
    rename 20 and add 100 new photos."""
    emu, bass, crab = (sorted((root / c).iterdir()) for c in ("emu", "bass", "crab"))
    for path in emu[:deleted]:
        path.unlink()
    for path in bass[:moved]:
        path.rename(root / "beaver" / f"from_bass_{path.name}")
    for path in crab[:renamed]:
        path.rename(path.with_name(f"renamed_{path.name}"))
    for category, n in (added if added is not None else {"ant": 42, "cup": 50}).items():
        (root / category).mkdir()
        for src in caltech_files(category, n):
            shutil.copy(src, root / category / src.name)
    for src in caltech_files("lamp", lamps):
        shutil.copy(src, root / "crab" / f"lamp_{src.name}")


def logged(since: int) -> tuple[int, int]:
    """(images added, images removed) logged after a generation."""
    with db.connect() as conn:
        changes = staleness.changes_since(conn, since)
    return changes.added, changes.removed


def sync_cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "cbir", "sync", str(root), *SMALL]


def kill_when(root: Path, env: dict[str, str], ready) -> None:
    """Start a sync and kill -9 it once `ready()` is true (it must still be running then)."""
    proc = subprocess.Popen(sync_cmd(root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not ready():
            assert proc.poll() is None, "the sync ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_kill_9_during_a_large_sync_then_rerun_ends_as_an_uninterrupted_sync(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 50, "bass": 50, "beaver": 46, "crab": 73, "ketch": 80})
    other = tmp_path / "uninterrupted"
    run_cli("ingest", str(root), "--model", MODEL, check=True)
    with home(other) as env:
        run_cli("ingest", str(root), "--model", MODEL, check=True, env=env)
        start = state()
    assert state() == start  # the same starting collection in both databases
    change_tree(root)
    with home(other) as env:
        run_cli("sync", str(root), check=True, env=env)
        expected = state()
        embedded.stop()
    with db.connect() as conn:
        g0 = staleness.generation(conn)
    env = dict(os.environ)
    kill_when(root, env, lambda: logged(g0)[1] >= 6)  # while paths are being forgotten
    first = state()
    kill_when(root, env, lambda: logged(g0)[0] >= 20)  # while new photos are being embedded
    second = state()
    assert first != expected and second != expected and logged(g0)[0] < 100  # killed mid-way, both times
    out = run_cli("sync", str(root), check=True).stdout
    assert state() == expected
    assert "removed 0" in out  # the removals were done before the kills
    assert "added 0, moved 0, relabelled 0, removed 0" in run_cli("sync", str(root), check=True).stdout
    assert {p for p, _ in expected["paths"]} == {display_path(p) for p in root.rglob("*") if p.is_file()}


def test_a_sync_waits_for_one_in_progress(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 10, "bass": 10})
    run_cli("ingest", str(root), "--model", MODEL, check=True)
    for path in sorted((root / "emu").iterdir())[:4]:
        path.unlink()
    before = state()
    with db.connect() as conn, locks.exclusive(conn):  # as another sync would hold it
        proc = subprocess.Popen(sync_cmd(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = iter(proc.stderr.readline, "")
            assert any("waiting for another sync, remove or relabel" in line for line in lines)
            time.sleep(1)
            assert proc.poll() is None and state() == before  # it waits, and has changed nothing
            assert locks.lock_holder(conn) == conn.info.backend_pid
        except BaseException:
            proc.kill()
            raise
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "removed 4, unchanged 16" in stdout, stdout
    assert len(state()["paths"]) == 16


def test_two_syncs_at_once(fresh_home: Path, tmp_path: Path) -> None:
    root = make_subset(tmp_path / "photos", {"emu": 20, "bass": 20, "beaver": 20, "crab": 20})
    run_cli("ingest", str(root), "--model", MODEL, check=True)
    change_tree(root, deleted=5, moved=5, renamed=4, added={"ant": 6}, lamps=0)  # add 6
    procs = [
        subprocess.Popen(sync_cmd(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    summaries = sorted(line for out, _ in outputs for line in out.splitlines() if line.startswith("added"))
    assert summaries == [  # one did the work, the other waited for it and found nothing left to do
        "added 0, moved 0, relabelled 0, removed 0, unchanged 81",
        "added 6, moved 9, relabelled 5, removed 5, unchanged 66",
    ]
    after = state()
    assert {p for p, _ in after["paths"]} == {display_path(p) for p in root.rglob("*") if p.is_file()}
