"""The Map and search by region in a real browser: `streamlit run` on loopback, Debian's Chromium (no GPU).

Real Caltech-101 photos embedded by the genuine built-in efficientnet-lite0 (ImageNet weights). The legend
lists every category and hides or isolates one (checked by selecting everything afterwards); the search box
highlights a category; a box dragged on an uploaded composite of two photos searches that half, which finds
its own category first, and the Map places that crop. Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from support import ROOT, caltech_files
from support.browser import IMAGES, WAIT_MS, chromium, dashboard

from cbir.analysis import projection
from cbir.indexing.ingest import ingest
from cbir.storage import db

ARTIFACTS = ROOT / "tests" / "artifacts"
CATEGORIES = {"accordion": 8, "airplanes": 8, "dalmatian": 8, "elephant": 8}
MODEL = "efficientnet-lite0"
PLOT = ".st-key-map .js-plotly-plot"
SELECTED = re.compile(r"^(\d+) selected")
FIRST = re.compile(r"^#1 · [\d.]+ · (\S+)")


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


@pytest.fixture(scope="module")
def server(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ingest([f for c, n in CATEGORIES.items() for f in caltech_files(c, n)], MODEL, progress=False)
    with db.connect() as conn:
        projection.project(conn, n_neighbors=5, progress=False)
    with dashboard(tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(WAIT_MS)
        yield page


def open_map(page: Page, server: str) -> None:
    page.goto(f"{server}/map")
    page.locator(PLOT).wait_for()
    page.wait_for_function("sel => document.querySelector(sel)?._fullData?.length >= 4", arg=PLOT)


def select_everything(page: Page, expected: int) -> None:
    """Drag a box over the whole plot; the page must then list `expected` images as selected.

    A drag that starts inside a selection moves it (plotly.js), so an earlier one is cleared first (double-click).
    """
    box = page.locator(f"{PLOT} .nsewdrag").first.bounding_box()
    assert box is not None
    if page.get_by_text(SELECTED).count():
        page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.get_by_text(SELECTED)).to_have_count(0)
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=4)
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=4)
    page.mouse.up()
    expect(page.get_by_text(SELECTED)).to_have_text(re.compile(rf"^{expected} selected"), timeout=60_000)


def visible(page: Page) -> dict[str, bool]:
    """Each trace's legend name -> whether plotly.js draws it."""
    return page.locator(PLOT).evaluate("gd => Object.fromEntries(gd._fullData.map(t => [t.name, t.visible === true]))")


def test_the_legend_lists_every_category_and_hides_or_isolates_one(server: str, page: Page) -> None:
    open_map(page, server)
    entries = page.locator(f"{PLOT} .legend .traces")
    names = [f"{c} · {n}" for c, n in sorted(CATEGORIES.items())]
    expect(entries).to_have_count(len(names))
    assert [entries.nth(n).locator(".legendtext").text_content() for n in range(len(names))] == names
    select_everything(page, 32)
    page.screenshot(path=str(ARTIFACTS / "map-legend.png"), full_page=True)

    entries.nth(2).locator(".legendtoggle").click()  # dalmatian
    page.wait_for_function("sel => document.querySelector(sel)._fullData[2].visible === 'legendonly'", arg=PLOT)
    select_everything(page, 24)  # the 8 dalmatians are out of the selection too
    assert not visible(page)["dalmatian · 8"]

    entries.nth(0).locator(".legendtoggle").dblclick()  # accordion only
    page.wait_for_function("sel => document.querySelector(sel)._fullData[1].visible === 'legendonly'", arg=PLOT)
    assert [name for name, shown in visible(page).items() if shown] == ["accordion · 8"]
    select_everything(page, 8)
    expect(page.locator(IMAGES)).to_have_count(8)


def test_the_search_box_highlights_a_category(server: str, page: Page) -> None:
    open_map(page, server)
    field = page.get_by_label("Highlight")
    field.fill("ELEPH")
    field.press("Enter")
    page.get_by_text("8 match 'ELEPH'").wait_for()
    page.wait_for_function(
        "sel => document.querySelector(sel)._fullData.some(t => t.name === \"matches 'ELEPH' · 8\" && t._length === 8)",
        arg=PLOT,
    )
    page.screenshot(path=str(ARTIFACTS / "map-highlight.png"), full_page=True)


def composite(left: Path, right: Path, out: Path, height: int = 320) -> Path:
    """Two photos side by side, each scaled to the same height."""
    halves = [Image.open(p).convert("RGB") for p in (left, right)]
    halves = [h.resize((round(h.width * height / h.height), height)) for h in halves]
    canvas = Image.new("RGB", (halves[0].width + halves[1].width, height))
    canvas.paste(halves[0], (0, 0))
    canvas.paste(halves[1], (halves[0].width, 0))
    canvas.save(out)
    return out


def results(page: Page) -> list[str]:
    captions = page.get_by_text(re.compile(r"^#\d+ · "))
    expect(captions).to_have_count(10)
    return captions.all_inner_texts()


def drag_region(page: Page, start: float, end: float) -> None:
    """Drag a box on the region picker (inside its iframe) from `start` to `end`, as shares of its width."""
    picture = page.frame_locator("iframe[title*='streamlit_image_coordinates']").locator("#image")
    picture.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('iframe')].some(f => f.contentDocument?.getElementById('image')?.complete)"
    )
    box = picture.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + start * box["width"], box["y"] + 0.05 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + (start + end) / 2 * box["width"], box["y"] + 0.5 * box["height"], steps=4)
    page.mouse.move(box["x"] + end * box["width"], box["y"] + 0.95 * box["height"], steps=4)
    page.mouse.up()


def test_a_box_on_an_upload_searches_that_part_and_the_map_follows(server: str, page: Page, tmp_path: Path) -> None:
    left, right = caltech_files("accordion", 12)[-1], caltech_files("dalmatian", 12)[-1]  # neither is stored
    both = composite(left, right, tmp_path / "accordion-and-dalmatian.png")
    page.goto(f"{server}/search")
    page.get_by_text("Upload an image, pick a stored one, or give a path.").wait_for()
    page.locator("input[type=file]").set_input_files(str(both))
    whole = results(page)

    page.get_by_text("Search a region of the image").click()
    share = Image.open(left).width * 320 / Image.open(left).height / Image.open(both).width
    drag_region(page, 0.02, share - 0.02)
    page.get_by_text("Searching the box").wait_for()
    page.wait_for_function("w => ![...document.querySelectorAll('p')].some(p => p.innerText === w)", arg=whole[0])
    left_hits = results(page)
    assert FIRST.match(left_hits[0]).group(1) == "accordion", left_hits
    page.screenshot(path=str(ARTIFACTS / "search-region.png"), full_page=True)

    drag_region(page, share + 0.02, 0.98)
    page.wait_for_function("w => ![...document.querySelectorAll('p')].some(p => p.innerText === w)", arg=left_hits[0])
    right_hits = results(page)
    assert FIRST.match(right_hits[0]).group(1) == "dalmatian", right_hits
    assert left_hits != whole and right_hits != whole and left_hits != right_hits

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Map").click()
    page.get_by_text("The red star is the latest query").wait_for()
    query = page.locator(PLOT).evaluate("gd => gd._fullData.filter(t => t.name === 'query').map(t => t._length)")
    assert query == [1]
