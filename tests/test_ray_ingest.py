"""`cbir ingest --ray` on a real Ray cluster (a head and one worker node process on 127.0.0.1), against the local
ingest of the same files: same image rows, same paths, vectors within 1e-5; and a worker node killed mid-run.

The cluster runs in a loopback-only network namespace (tests/support/ray_cluster.py), shared by all the Ray steps
of this module (one cluster start), and is stopped, and its process group killed, even when a step fails.
The databases are the embedded Postgres of three homes: the local ingest's, the Ray ingest's and the kill test's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from support import caltech_files, make_subset, run_cli
from support.ray_cluster import namespace_available, run_steps

from cbir.indexing.ingest import discover, display_path
from cbir.indexing.ingest import ingest as local_ingest
from cbir.storage import db

BATCH = 4
KILL_BATCH = 2


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


def _with_copies(root: Path) -> Path:
    """A within-run duplicate in another folder (its first path must be the elephant one) and a text file."""
    shutil.copy(caltech_files("elephant", 1)[0], root / "rhino" / "zz_copy_of_elephant.jpg")
    (root / "rhino" / "notes.jpg").write_text("not an image")
    return root


def _home_url(home: Path) -> str:
    return run_cli("db", "url", check=True, env=os.environ | {"CBIR_HOME": str(home)}).stdout.strip()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, cbir_home: Path) -> dict:
    """Local ingests in this process, then every Ray step in one namespace; the Ray homes' servers stopped after."""
    if why := namespace_available():
        pytest.skip(f"no loopback-only network namespace for Ray here: {why}")
    tmp = tmp_path_factory.mktemp("ray")
    photos = _with_copies(make_subset(tmp / "photos", {"dalmatian": 5, "elephant": 8, "rhino": 8}))
    killed = make_subset(tmp / "kill", {"airplanes": 30, "Motorbikes": 30})
    for model in (tiny_model, "phash"):
        local_ingest([photos], model, batch_size=BATCH, progress=False)
    homes = {"ray": tmp / "ray-home", "kill": tmp / "kill-home"}
    try:
        urls = {name: _home_url(home) for name, home in homes.items()}
        ray_args = ["--ray", "{address}", "--batch-size"]
        steps = [
            {"name": m, "args": ["ingest", str(photos), "--model", m, *ray_args, str(BATCH)]}
            | {"env": {"CBIR_HOME": str(homes["ray"])}}
            for m in (tiny_model, "phash")
        ]
        kill_args = ["ingest", str(killed), "--model", "phash", *ray_args, str(KILL_BATCH)]
        kill_env = {"CBIR_HOME": str(homes["kill"])}
        steps.append({"name": "killed", "args": kill_args, "env": kill_env, "kill_at": 12} | {"url": urls["kill"]})
        steps.append({"name": "rerun", "args": kill_args, "env": kill_env, "url": urls["kill"]})
        results = {r["name"]: r for r in run_steps(steps, tmp, timeout=480)}
        assert "error" not in results, results["error"]
        yield {"photos": photos, "killed": killed, "urls": urls, "results": results}
    finally:
        for home in homes.values():
            run_cli("db", "stop", env=os.environ | {"CBIR_HOME": str(home)})


def _dump(url: str, model: str) -> tuple[dict, dict, dict]:
    """(images by sha256, path -> sha256, vectors or bit strings by sha256) of one model in one database."""
    with psycopg.connect(url) as conn:
        register_vector(conn)
        images = {
            r[0]: (r[1], r[2], r[3], r[4], r[5], r[6], hashlib.md5(r[7]).hexdigest())
            for r in conn.execute("SELECT sha256, path, category, width, height, format, bytes, thumbnail FROM images")
        }
        paths = dict(conn.execute("SELECT p.path, i.sha256 FROM image_paths p JOIN images i ON i.id = p.image_id"))
        rows = conn.execute(
            "SELECT i.sha256, coalesce(e.embedding::text, e.bits::text) FROM embeddings e"
            " JOIN images i ON i.id = e.image_id JOIN models m ON m.id = e.model_id WHERE m.name = %s",
            (model,),
        )
        vectors = {r[0]: r[1] for r in rows}
    return images, paths, vectors


def _assert_same_as_local(runs: dict, model: str) -> tuple[dict, dict]:
    step = runs["results"][model]
    assert step["rc"] == 3, step  # the text file was skipped, as locally
    assert "notes.jpg: not an image" in step["stdout"], step["stdout"]
    assert "ingest (ray)" in step["stderr"] and "img/s" in step["stderr"]  # progress on the driver
    local_images, local_paths, local_vectors = _dump(db.database_url(), model)
    ray_images, ray_paths, ray_vectors = _dump(runs["urls"]["ray"], model)
    assert ray_images == local_images  # same rows, same first paths and categories (the copy's is elephant's)
    assert ray_paths == local_paths
    assert ray_vectors.keys() == local_vectors.keys() and len(local_vectors) == len(local_images)
    return ray_vectors, local_vectors


def test_tiny_dinov2_on_ray_matches_the_local_ingest(runs: dict, tiny_model: str) -> None:
    ray_vectors, local_vectors = _assert_same_as_local(runs, tiny_model)
    worst = max(np.abs(_floats(ray_vectors[s]) - _floats(local_vectors[s])).max() for s in local_vectors)
    assert worst <= 1e-5, worst


def _floats(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float64)


def test_phash_on_ray_matches_the_local_ingest(runs: dict) -> None:
    ray_bits, local_bits = _assert_same_as_local(runs, "phash")
    assert ray_bits == local_bits


def _half_written(state: dict, files: list[str]) -> list[set[str]]:
    """The batches of which some but not all paths are stored."""
    stored = set(state["paths"])
    batches = [set(files[i : i + KILL_BATCH]) for i in range(0, len(files), KILL_BATCH)]
    return [b for b in batches if 0 < len(b & stored) < len(b)]


def test_killing_the_worker_node_mid_run_keeps_whole_batches_and_a_rerun_completes(runs: dict) -> None:
    killed, rerun = runs["results"]["killed"], runs["results"]["rerun"]
    files = list(discover([runs["killed"]]))
    paths = [display_path(f) for f in files]
    contents = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert killed["killed_processes"] > 0, killed  # the worker node was running when killed
    assert 12 <= killed["at_kill"]["embeddings"] < len(contents), killed  # mid-run
    assert killed["rc"] in (0, 2), killed  # Ray either finished on the head node or the run stopped in one line
    if killed["rc"] == 2:
        assert "whole batches only were stored: run it again" in killed["stderr"], killed["stderr"]
    for state in (killed["at_kill"], killed["after"], rerun["after"]):
        assert not _half_written(state, paths), state
        assert state["without_embedding"] == 0 and state["images"] == state["embeddings"]
    assert rerun["rc"] == 0, rerun
    final = rerun["after"]
    assert final["images"] == len(contents)  # exactly one row per image
    assert final["paths"] == sorted(paths)


def test_without_ray_the_flag_says_how_to_install_it(tmp_path: Path, tiny_model: str) -> None:
    """Ray hidden from the interpreter: one line naming the extra, before anything is read or started."""
    (tmp_path / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = run_cli("ingest", str(caltech_files("elephant", 1)[0]), "--model", "phash", "--ray", "local", env=env)
    assert proc.returncode == 2, proc
    assert proc.stderr.strip().splitlines() == [
        "cbir: error: --ray needs the optional dependency Ray (with Ray Data): pip install 'cbir[ray]'"
    ]


def test_a_malformed_address_is_one_line(tmp_path: Path) -> None:
    photos = make_subset(tmp_path / "p", {"elephant": 1})
    proc = run_cli("ingest", "--ray", str(photos), str(photos), "--model", "phash")
    assert proc.returncode == 2
    expected = f"--ray takes local, auto, HOST:PORT or ray://HOST:PORT, not {str(photos)!r} (the paths come first)"
    assert proc.stderr.strip().splitlines() == [f"cbir: error: {expected}"]
