"""Streamlit's `st.login` end to end in Chromium, against a stand-in OpenID Connect provider on loopback
(tests/support/fake_idp.py; no real identity provider is reachable offline): an allowed address gets in,
one off the allow-list sees nothing, logout works, and an identity issued longer ago than
CBIR_SESSION_MINUTES is logged out."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support import make_subset
from support.browser import WAIT_MS, chromium, dashboard, free_port
from support.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdp, fake_idp

from cbir.indexing.ingest import ingest

ALICE = {"email": "alice@example.com", "email_verified": True, "name": "Alice"}


pytestmark = pytest.mark.slow  # left out by `make test-fast` (servers, browsers, benchmarks)


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with fake_idp(free_port()) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(cbir_home: Path, idp: FakeIdp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard with [auth] pointing at the stand-in provider, and no local user."""
    ingest([make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 3})], "phash", progress=False)
    port = free_port()
    work = tmp_path_factory.mktemp("work")  # secrets.toml is read from the server's working folder
    (work / ".streamlit").mkdir()
    (work / ".streamlit" / "secrets.toml").write_text(
        f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "a-long-random-cookie-secret-for-tests"\n'
        f'[auth.testidp]\nclient_id = "{CLIENT_ID}"\nclient_secret = "{CLIENT_SECRET}"\n'
        f'server_metadata_url = "{idp.metadata_url}"\n'
        '[cbir]\noidc_allowed = ["@example.com"]\n'
    )
    env = os.environ | {"CBIR_SESSION_MINUTES": "60"}
    with dashboard(work / "streamlit.log", cwd=work, port=port, env=env) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(server: str, browser):
    """A new browser context per test: no identity cookie from the test before."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(WAIT_MS)
    yield p
    context.close()


def log_in_with_the_provider(page, server: str) -> None:
    page.goto(f"{server}/duplicates")
    button = page.get_by_role("button", name="Log in with testidp")
    button.wait_for()
    expect(page.locator("img")).to_have_count(0)
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)  # no local users: no password form
    button.click()


def test_an_allowed_identity_gets_in_and_logs_out(server: str, idp: FakeIdp, page) -> None:
    idp.identity, idp.issued_at = ALICE, None
    before = idp.logins
    log_in_with_the_provider(page, server)
    page.get_by_text("Logged in as alice@example.com").wait_for()
    assert idp.logins == before + 1  # the token really came from the provider
    page.get_by_role("heading", name="cbir: reverse image search").wait_for()
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name="Duplicates").click()
    page.get_by_role("heading", name="Duplicates").wait_for()
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in with testidp").wait_for()
    expect(page.get_by_text("Logged in as")).to_have_count(0)


def test_an_identity_off_the_allow_list_sees_nothing(server: str, idp: FakeIdp, page) -> None:
    idp.identity, idp.issued_at = {"email": "eve@elsewhere.example.net", "email_verified": True}, None
    log_in_with_the_provider(page, server)
    page.get_by_text("eve@elsewhere.example.net is not allowed on this dashboard").wait_for()
    expect(page.locator("img")).to_have_count(0)
    expect(page.locator('[data-testid="stSidebarNavLink"]')).to_have_count(0)
    assert "elephant" not in page.content()


def test_an_identity_issued_too_long_ago_is_logged_out(server: str, idp: FakeIdp, page) -> None:
    """Streamlit sets its identity cookie (seen on the callback's response); cbir finds it too old and removes it."""
    idp.identity, idp.issued_at = ALICE, time.time() - 61 * 60  # CBIR_SESSION_MINUTES is 60 here
    set_cookie: list[str] = []

    def callback(response) -> None:
        if response.url.startswith(f"{server}/oauth2callback"):
            set_cookie.extend(h["value"] for h in response.headers_array() if h["name"].lower() == "set-cookie")

    page.on("response", callback)
    log_in_with_the_provider(page, server)
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline and not (set_cookie and not identity_cookie(page)):
        page.wait_for_timeout(250)
    assert any(c.startswith("_streamlit_user=") for c in set_cookie), set_cookie  # the login itself succeeded
    assert not identity_cookie(page), "the too-old identity was not logged out"
    page.get_by_role("button", name="Log in with testidp").wait_for()
    expect(page.get_by_text("Logged in as")).to_have_count(0)
    expect(page.locator('[data-testid="stSidebarNavLink"]')).to_have_count(0)


def identity_cookie(page) -> bool:
    return any(c["name"].startswith("_streamlit_user") for c in page.context.cookies())
