"""A real browser on a real server: free loopback ports, a Streamlit (or `cbir serve`) process stopped by its
own pid even when a test fails, and Debian's Chromium through Playwright."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cbir.dashboard import launch
from support import ROOT

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = 'img[src*="/media/"]'  # st.image output, served from the media endpoint
WAIT_MS = 120_000  # the first query loads torch and the model in the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_command(port: int, script: str | Path = launch.APP) -> list[str]:
    """`streamlit run` of the dashboard on 127.0.0.1:port with the options `cbir serve` uses (cbir.dashboard.launch)."""
    return launch.streamlit_command("127.0.0.1", port, script)


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the server did not become healthy in {seconds}s:\n{log.read_text()}")


@contextlib.contextmanager
def running(command: list[str], port: int, log: Path, **popen) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start a dashboard server on 127.0.0.1:port, wait until healthy, and always stop it (by its pid)."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **popen)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def dashboard(
    log: Path, script: str | Path = launch.APP, cwd: Path = ROOT, port: int | None = None, env: dict | None = None
) -> Iterator[str]:
    """The dashboard served as `cbir serve` serves it, on 127.0.0.1 (a free port unless given), its output in
    `log`; yields its URL and stops it by its pid even when the test fails."""
    port = port or free_port()
    with running(streamlit_command(port, script), port, log, cwd=cwd, env=env) as (url, _):
        yield url


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Debian Chromium driven by Playwright (Playwright cannot download its own browsers here)."""
    from playwright.sync_api import expect, sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        expect.set_options(timeout=WAIT_MS)
        try:
            yield browser
        finally:
            browser.close()
