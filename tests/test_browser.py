"""The dashboard in a real browser: `streamlit run` on loopback, driven through Debian's Chromium by Playwright.

Upload a photo -> results appear; Map -> box selection -> thumbnails appear. Screenshots go to
tests/artifacts/ (git-ignored) as test artifacts. The tiny model is random: nothing here judges quality.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support import ROOT, caltech_files
from support.browser import IMAGES, WAIT_MS, chromium, dashboard, free_port, running

from cbir.analysis import projection
from cbir.indexing.ingest import ingest
from cbir.storage import db

ARTIFACTS = ROOT / "tests" / "artifacts"
CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


@pytest.fixture(scope="module")
def server(cbir_home: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A populated, projected collection served by `streamlit run` on a free loopback port."""
    ingest([f for c, n in CATEGORIES.items() for f in caltech_files(c, n)], tiny_model, progress=False)
    with db.connect() as conn:
        projection.project(conn, n_neighbors=5, progress=False)
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with dashboard(log, script="streamlit_app.py") as url:  # the clone's top-level entry point
        yield url


@pytest.fixture(scope="module")
def browser_page(server: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        yield page


def test_upload_shows_results(server: str, browser_page) -> None:
    page = browser_page
    page.goto(f"{server}/search")
    page.get_by_text("Upload an image, pick a stored one, or give a path.").wait_for()
    # A stored photo: the Map then highlights it at its own point, so this server never imports umap (~1 min
    # with its compile); placing a new image with the fitted UMAP is covered by test_dashboard and test_projection.
    query = caltech_files("elephant", CATEGORIES["elephant"])[-1]
    page.locator("input[type=file]").set_input_files(str(query))
    page.get_by_text("#1 ·").wait_for()
    expect(page.locator(IMAGES)).to_have_count(13)  # the query, its 10 results (the query left out), 2 heatmaps
    page.screenshot(path=str(ARTIFACTS / "search-upload.png"), full_page=True)
    print(f"screenshot: {ARTIFACTS / 'search-upload.png'}")
    captions = page.get_by_text(re.compile(r"^#\d+ · ")).all_inner_texts()
    assert len(captions) == 10 and not any(str(query) in c for c in captions)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    titles = ["Home", "Search", "Map", "Inspector", "Duplicates", "SQL"]
    assert links.count() == len(titles)  # st.navigation's pages, not Streamlit's automatic list of files
    assert [links.nth(n).inner_text().split()[-1] for n in range(len(titles))] == titles


def test_map_box_selection_shows_thumbnails(server: str, browser_page) -> None:
    page = browser_page
    page.locator('[data-testid="stSidebarNav"]').get_by_role(
        "link", name="Map"
    ).click()  # same session: query highlighted
    plot = page.locator(".st-key-map .js-plotly-plot")  # not the Search page's distances chart
    plot.wait_for()
    page.get_by_text("The red star is the latest query").wait_for()
    drag = plot.locator(".nsewdrag").first
    box = drag.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=5)
    page.mouse.up()
    page.get_by_text("24 selected").wait_for()
    expect(page.locator(IMAGES)).to_have_count(24)
    page.screenshot(path=str(ARTIFACTS / "map-selection.png"), full_page=True)
    print(f"screenshot: {ARTIFACTS / 'map-selection.png'}")


def test_a_second_browser_session_does_not_share_the_first_ones_state(server: str, browser_page) -> None:
    """Another analyst's session (its own browser context) sees no query of ours, and ours keeps its own."""
    other = browser_page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = other.new_page()
        page.goto(f"{server}/map")
        page.get_by_text("Drag a box or lasso to see the images.").wait_for()
        expect(page.get_by_text("The red star is the latest query")).to_have_count(0)
        expect(page.get_by_text(re.compile(r"^\d+ selected"))).to_have_count(0)
        page.goto(f"{server}/search")
        page.get_by_text("Upload an image, pick a stored one, or give a path.").wait_for()
        expect(page.get_by_text(re.compile(r"^#\d+ · "))).to_have_count(0)
    finally:
        other.close()
    expect(browser_page.get_by_text("The red star is the latest query")).to_be_visible()  # the first session's


def test_cbir_serve_listens_on_loopback_only(cbir_home: Path, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "cbir", "serve", "--port", str(port), "--no-open"]
    with running(command, port, tmp_path / "serve.log", cwd=tmp_path):  # from any directory, without a terminal
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local = [line.split()[3] for line in listening.splitlines()]  # State Recv-Q Send-Q Local Peer
        assert local == [f"127.0.0.1:{port}"]
    deadline = time.monotonic() + 20
    while listening.strip() and time.monotonic() < deadline:  # stopping cbir serve stops Streamlit too
        time.sleep(0.3)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert not listening.strip(), f"streamlit still listens on {port} after cbir serve stopped"
