"""The login in a real browser: with a user configured, every page URL shows the login form and nothing of
the collection; a wrong password is refused; the right one opens every page; logout closes them again; a
second browser context is not logged in. `streamlit run` on loopback, Debian's Chromium through Playwright.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support import make_subset, run_cli
from support.browser import IMAGES, WAIT_MS, chromium, dashboard

from cbir.indexing.ingest import ingest

PASSWORD = "correct horse battery"
URLS = {"": "cbir: reverse image search", "search": "Search", "map": "Map", "inspector": "Inspector"}
URLS |= {"duplicates": "Duplicates", "sql": "SQL"}


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


@pytest.fixture(scope="module")
def collection(cbir_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos (one stored twice, so Duplicates shows thumbnails) and one dashboard user."""
    photos = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 4, "rhino": 4})
    first = sorted((photos / "elephant").iterdir())[0]
    shutil.copy(first, photos / "rhino" / "copy-of-an-elephant.jpg")
    ingest([photos], "phash", progress=False)
    run_cli("users", "add", "alice", "--password-stdin", input=PASSWORD + "\n", check=True)
    return photos


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streamlit") / "streamlit.log"


@pytest.fixture(scope="module")
def server(collection: Path, server_log: Path) -> Iterator[str]:
    with dashboard(server_log) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page


def assert_shows_nothing(page, collection: Path, cbir_home: Path) -> None:
    """The login form, and in the whole HTML no image, no table and no stored path."""
    page.get_by_role("button", name="Log in").wait_for()
    page.wait_for_timeout(500)  # let the run finish: anything it sent would be in the page by now
    html = page.content()
    assert page.locator("img").count() == 0 and not re.search(r"(?<!static)/media/", html)  # st.image's files
    assert page.locator('table, [data-testid="stDataFrame"], [data-testid="stTable"]').count() == 0
    assert str(collection) not in html and str(cbir_home) not in html and "elephant" not in html
    assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0


def log_in(page, password: str) -> None:
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_every_page_url_shows_only_the_login_form(server: str, browser, collection: Path, cbir_home: Path) -> None:
    context, page = new_page(browser)
    try:
        for path in URLS:
            page.goto(f"{server}/{path}")
            assert_shows_nothing(page, collection, cbir_home)
    finally:
        context.close()


def test_wrong_password_refused_right_one_opens_every_page_and_logout_closes_them(
    server: str, browser, collection: Path, cbir_home: Path
) -> None:
    context, page = new_page(browser)
    try:
        page.goto(f"{server}/duplicates")
        assert_shows_nothing(page, collection, cbir_home)
        log_in(page, "not the password")
        page.get_by_text("wrong user name or password").wait_for()
        assert_shows_nothing(page, collection, cbir_home)

        log_in(page, PASSWORD)  # on /duplicates: that page opens, with the stored copies' thumbnails
        page.get_by_role("heading", name="Duplicates").wait_for()
        expect(page.locator(IMAGES).first).to_be_visible()
        page.get_by_text("Logged in as alice").wait_for()
        nav = page.locator('[data-testid="stSidebarNav"]')
        for title in ("Home", "Search", "Map", "Inspector", "Duplicates", "SQL"):
            nav.get_by_role("link", name=title).click()
            heading = URLS["" if title == "Home" else title.lower()]
            page.get_by_role("heading", name=heading).wait_for()
        nav.get_by_role("link", name="Home").click()
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()  # the collection's tables
        assert str(cbir_home) in page.content()

        page.get_by_role("button", name="Log out").click()
        assert_shows_nothing(page, collection, cbir_home)
        nav.get_by_role("link", name="SQL").wait_for(state="detached")
    finally:
        context.close()


def test_a_second_browser_context_is_not_logged_in(server: str, browser, collection: Path, cbir_home: Path) -> None:
    first, page = new_page(browser)
    second, other = new_page(browser)
    try:
        page.goto(f"{server}/")
        log_in(page, PASSWORD)
        page.get_by_text("Logged in as alice").wait_for()
        for path in ("", "sql", "duplicates"):
            other.goto(f"{server}/{path}")
            assert_shows_nothing(other, collection, cbir_home)
        expect(page.get_by_text("Logged in as alice")).to_be_visible()  # the first one still is
    finally:
        first.close()
        second.close()


def test_the_server_log_holds_no_password(server: str, server_log: Path) -> None:
    """After the logins above (wrong and right passwords), the server's output names neither."""
    output = server_log.read_text()
    assert "not the password" not in output and PASSWORD not in output
