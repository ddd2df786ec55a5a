"""A real Ray cluster on 127.0.0.1 (a head and one worker node process) for the tests, in a network namespace.

Ray binds some processes to the machine's network address and probes a public resolver even when told to use
127.0.0.1, so the tests never start it in the machine's own network: `run_steps` runs this file as a script under
`unshare -n` (a new network namespace with loopback only, as root) in its own process group, and kills that
group afterwards, so nothing Ray started outlives the test even when it fails. The script starts the cluster,
runs `cbir` commands against it (optionally killing the worker node mid-run), stops the cluster in a finally
and writes what happened as JSON. The embedded Postgres is reached on its Unix socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
NODE = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 * 1024 * 1024)]
# Token authentication, as on a real cluster: one random token per run, for every process of it.
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def namespace_available() -> str | None:
    """Why a loopback-only network namespace cannot be made here (None when it can)."""
    if os.geteuid() != 0:
        return "unshare -n needs root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def run_steps(steps: list[dict], workdir: Path, timeout: float) -> list[dict]:
    """Run the steps (see `main`) on a fresh two-node cluster inside a loopback-only namespace; their results."""
    spec, results = workdir / "steps.json", workdir / "results.json"
    spec.write_text(json.dumps(steps))
    command = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "bash"]
    command += [sys.executable, __file__, str(spec), str(results), str(workdir / "ray")]
    env = os.environ | ENV | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}
    proc = subprocess.Popen(command, start_new_session=True, env=env)
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever Ray left running in the namespace's process group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert results.exists(), f"the Ray namespace script exited {rc} without results"
    return json.loads(results.read_text())


def _ray(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout, env=os.environ | ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def _raylets() -> set[int]:
    import psutil

    found = set()
    for p in psutil.process_iter(attrs=("pid", "cmdline")):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("/raylet/raylet"):
            found.add(p.info["pid"])
    return found


class Cluster:
    """A head and worker node processes on 127.0.0.1, started with the `ray` command as a user would."""

    def __init__(self, temp_dir: Path) -> None:
        self.temp_dir = temp_dir
        self.address = ""
        self.head_seconds = 0.0
        self.worker: int | None = None  # the worker node's raylet

    def start(self) -> None:
        start = time.perf_counter()
        out = _ray("start", "--head", "--port", "0", *NODE, "--temp-dir", str(self.temp_dir), "--disable-usage-stats")
        self.head_seconds = time.perf_counter() - start
        match = re.search(r"--address='([^']+)'", out)
        assert match, out
        self.address = match.group(1)
        self.add_worker()

    def add_worker(self) -> None:
        before = _raylets()
        _ray("start", "--address", self.address, *NODE)
        (self.worker,) = _raylets() - before

    def kill_worker(self) -> int:
        """SIGKILL the worker node: its raylet and every process under it (its workers and agents)."""
        import psutil

        raylet = psutil.Process(self.worker)
        victims = [*raylet.children(recursive=True), raylet]
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(victims, timeout=10)
        self.worker = None
        return len(victims)

    def stop(self) -> None:
        """Stop every process of the cluster: all of them are in this script's process group (Ray does not start
        sessions of its own), so they are found by that group, never by name (`ray stop` would end any Ray on the
        machine)."""
        import psutil

        group = os.getpgid(0)
        cluster = [p for p in psutil.process_iter() if p.pid != os.getpid() and _group(p.pid) == group]
        for p in cluster:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(cluster, timeout=15)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _embeddings(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        except psycopg.errors.UndefinedTable:  # the command has not applied the migrations yet
            return 0


def database_state(url: str) -> dict:
    """Recorded paths, row counts, and images stored without an embedding (a half-written batch would leave some)."""
    import psycopg

    with psycopg.connect(url) as conn:
        paths = sorted(r[0] for r in conn.execute("SELECT path FROM image_paths"))
        images, embeddings, bare = conn.execute(
            "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM embeddings),"
            " (SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id))"
        ).fetchone()
    return {"paths": paths, "images": images, "embeddings": embeddings, "without_embedding": bare}


def _run_step(cluster: Cluster, step: dict) -> dict:
    """One `cbir` command against the cluster; with "kill_at", the worker node is killed once the database at "url"
    holds that many embeddings (the head node carries on alone). With "url", the database's state is recorded right
    after the kill and after the command."""
    args = [a.replace("{address}", cluster.address) for a in step["args"]]
    env = os.environ | ENV | step.get("env", {})
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cbir", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    result: dict = {"name": step["name"]}
    if "kill_at" in step:
        while proc.poll() is None and _embeddings(step["url"]) < step["kill_at"]:
            time.sleep(0.05)
        result["killed_processes"] = cluster.kill_worker() if proc.poll() is None else 0
        result["at_kill"] = database_state(step["url"])
    try:
        out, err = proc.communicate(timeout=step.get("timeout", 240))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += "\n(timed out)"
    result |= {"rc": proc.returncode, "stdout": out, "stderr": err, "seconds": time.perf_counter() - start}
    if "url" in step:
        result["after"] = database_state(step["url"])  # before anything else touches the database
    return result


def main(spec: str, results: str, temp_dir: str) -> None:
    """Start the cluster, run each step (name, args with {address}, env, optional kill_at + url), stop it."""
    cluster = Cluster(Path(temp_dir))
    done: list[dict] = []
    try:
        cluster.start()
        done.append({"name": "cluster", "address": cluster.address, "head_seconds": cluster.head_seconds})
        for step in json.loads(Path(spec).read_text()):
            done.append(_run_step(cluster, step))
    except Exception as exc:  # reported to the test, which fails with it
        done.append({"name": "error", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        cluster.stop()
        Path(results).write_text(json.dumps(done))


if __name__ == "__main__":
    main(*sys.argv[1:4])
