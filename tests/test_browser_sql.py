"""The SQL page in a real browser: type a query into the editor, run it with Ctrl+Enter, see its rows and the
thumbnails of the images it returns; the schema browser lists every table the console can read.

Real photos embedded by the tiny random DINOv2 and evaluated (so the evaluation tables hold a run), served by
`streamlit run` on loopback and driven through Debian's Chromium. Screenshot: tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support import ROOT, make_subset
from support.browser import IMAGES, WAIT_MS, chromium, dashboard

from cbir.analysis.evaluate import evaluate
from cbir.indexing.ingest import ingest
from cbir.storage import console, db
from cbir.storage.schema import console_schema

ARTIFACTS = ROOT / "tests" / "artifacts"
EDITOR = 'iframe[title="code_editor.code_editor"]'
EVALUATION = {"evaluation_runs", "evaluation_categories", "evaluation_confusions", "evaluation_neighbours"}


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


@pytest.fixture(scope="module")
def server(cbir_home: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 6, "rhino": 6})
    ingest([root], tiny_model, progress=False)
    evaluate(progress=False)
    try:
        with dashboard(tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
            yield url
    finally:
        console.reader_pool().close()  # before the module's server stops under it
        console._reader_pool.cache_clear()


def test_type_a_query_run_it_with_ctrl_enter_and_see_rows_and_thumbnails(server: str) -> None:
    tables, _ = console_schema()
    names = {t.name for t in tables}
    assert EVALUATION | {"images", "embeddings", "model_inputs", "projection_reducers"} <= names
    with db.connect() as conn:
        query = conn.execute("SELECT min(id) FROM images").fetchone()[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{server}/sql")
        editor = page.frame_locator(EDITOR).locator(".ace_content")
        editor.wait_for()
        for table in tables:  # the schema browser: one expander per readable table, with its row count
            rows = f"{table.rows:,} row" + ("" if table.rows == 1 else "s")
            expect(page.get_by_text(f"{table.name} · {rows}", exact=True)).to_be_visible()

        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(f"SELECT * FROM cbir_neighbors({query}, 6)")
        page.keyboard.press("Control+Enter")
        expect(page.get_by_text("6 rows", exact=True)).to_be_visible()
        expect(page.get_by_role("tab", name="Table")).to_be_visible()

        page.get_by_role("tab", name="Thumbnails").click()
        panel = page.get_by_role("tabpanel").filter(has=page.locator(IMAGES))
        expect(panel.locator(IMAGES)).to_have_count(6)
        expect(panel.get_by_text(re.compile(r"^#\d+ (elephant|rhino) · distance=")).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "sql-console.png"), full_page=True)
