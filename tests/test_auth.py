"""Dashboard users: `cbir users add/list/remove`, what is stored (salted argon2id, unreadable to the SQL console),
throttled wrong passwords, sessions that end, the rule of when a login is needed, and `cbir serve --host`.

Real database, real CLI processes, Streamlit's AppTest for the gate. Nothing waits on the clock: the throttle
runs on a fake one, and an expired session is one whose login time lies further back than its lifetime.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from support import run_cli
from support.apptest import APP, TIMEOUT, texts
from support.browser import free_port, running

from cbir.auth import policy, secrets, throttle, users
from cbir.config import settings
from cbir.dashboard import login
from cbir.errors import BadArgument, CbirError, ConfigError, LoginRefused
from cbir.storage import db
from cbir.storage.console import run_readonly

PASSWORD = "correct horse battery"


def add(name: str, password: str = PASSWORD, *args: str) -> subprocess.CompletedProcess:
    return run_cli("users", "add", name, "--password-stdin", *args, input=password + "\n")


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no wrong passwords counted (the throttle lives as long as its process)."""
    monkeypatch.setattr(users, "THROTTLE", throttle.Throttle())


def test_users_add_list_remove_through_the_cli(cbir_home: Path) -> None:
    assert add("alice").stdout.strip() == "added user alice"
    with db.connect() as conn:
        users.add_user(conn, "bob@example.com", PASSWORD)
    listed = run_cli("users", "list", check=True).stdout
    assert [line.split()[0] for line in listed.splitlines()] == ["alice", "bob@example.com"]
    assert "argon2" not in listed and PASSWORD not in listed
    taken = add("alice")
    assert taken.returncode == 2 and taken.stderr.strip().count("\n") == 0 and "--replace" in taken.stderr
    assert "set a new password" in add("alice", "another password", "--replace").stdout
    assert run_cli("users", "remove", "bob@example.com", check=True).stdout.strip() == "removed user bob@example.com"
    bad = add("two words")
    assert bad.returncode == 2 and "must be 1 to 64" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    with db.connect() as conn:
        with pytest.raises(BadArgument, match="no user named 'bob@example.com'"):
            users.remove_user(conn, "bob@example.com")
        with pytest.raises(BadArgument, match="8 to 1024 characters"):
            users.add_user(conn, "carol", "short")
        users.remove_user(conn, "alice")
    assert "no users" in run_cli("users", "list", check=True).stdout


def test_the_password_prompt_asks_twice_and_never_echoes(cbir_home: Path) -> None:
    """Without a terminal getpass reads stdin; with one it would not echo (typer's hide_input)."""
    asked = run_cli("users", "add", "dave", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert asked.returncode == 0, asked.stderr
    assert PASSWORD not in asked.stdout + asked.stderr and "Repeat for confirmation" in asked.stdout + asked.stderr
    mismatch = run_cli("users", "add", "erin", input=f"{PASSWORD}\nsomething else\n")
    assert mismatch.returncode != 0 and "do not match" in mismatch.stdout + mismatch.stderr
    with db.connect() as conn:
        assert [a.name for a in users.list_users(conn)] == ["dave"]
        users.remove_user(conn, "dave")


def test_stored_hashes_are_salted_argon2id_and_hold_no_password(cbir_home: Path) -> None:
    with db.connect() as conn:
        users.add_user(conn, "frank", PASSWORD)
        users.add_user(conn, "grace", PASSWORD)
        hashes = {a.name: a.password_hash for a in users.list_users(conn)}
        dump = str(conn.execute("SELECT array_agg(u::text) FROM cbir_private.dashboard_users u").fetchone()[0])
        for name in ("frank", "grace"):
            users.remove_user(conn, name)
    assert all(h.startswith("$argon2id$") for h in hashes.values())
    assert hashes["frank"] != hashes["grace"]  # same password, different salts
    assert PASSWORD not in dump and "horse" not in dump


def test_the_sql_console_cannot_read_the_hashes_even_if_granted_by_mistake(cbir_home: Path) -> None:
    with db.connect() as conn:
        users.add_user(conn, "heidi", PASSWORD)
    try:
        for query in ("SELECT * FROM cbir_private.dashboard_users", "SELECT password_hash FROM dashboard_users"):
            with pytest.raises(CbirError, match="permission denied|does not exist"):
                run_readonly(query)
        assert run_readonly("SELECT count(*) FROM collection_roots").columns == ["count"]  # its paths are no secret
        with db.connect() as conn:  # a later migration granting too much: row-level security still hides every row
            conn.execute("GRANT USAGE ON SCHEMA cbir_private TO cbir_reader")
            conn.execute("GRANT SELECT ON cbir_private.dashboard_users TO cbir_reader")
        try:
            assert run_readonly("SELECT * FROM cbir_private.dashboard_users").rows == []
        finally:
            with db.connect() as conn:
                conn.execute("REVOKE SELECT ON cbir_private.dashboard_users FROM cbir_reader")
                conn.execute("REVOKE USAGE ON SCHEMA cbir_private FROM cbir_reader")
    finally:
        with db.connect() as conn:
            users.remove_user(conn, "heidi")


def test_ten_wrong_passwords_wait_ever_longer_and_the_right_one_still_works(
    cbir_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """authenticate waits for the throttle's slots (on a fake clock: the schedule, not the machine's speed)."""
    clock = FakeClock()
    monkeypatch.setattr(users, "THROTTLE", throttle.Throttle(clock=clock, sleep=clock.sleep))
    with db.connect() as conn:
        users.add_user(conn, "ivan", PASSWORD)
    for n in range(10):
        with pytest.raises(LoginRefused, match="^wrong user name or password$"):
            users.authenticate(db.connect, "ivan", f"guess {n}", "192.0.2.7")
    assert clock.slept == pytest.approx([throttle.delay_after(n) for n in range(1, 10)])  # 5.11 s of waits
    assert users.authenticate(db.connect, "ivan", PASSWORD, "192.0.2.7").name == "ivan"
    assert clock.slept[-1] == pytest.approx(throttle.delay_after(10))  # its turn came, 5.12 s after the last
    waits = len(clock.slept)
    assert users.authenticate(db.connect, "ivan", PASSWORD, "192.0.2.7").name == "ivan"
    assert len(clock.slept) == waits  # the right password cleared the name's and the address's count
    with db.connect() as conn:
        users.remove_user(conn, "ivan")


def test_an_unknown_name_is_refused_like_a_wrong_password(cbir_home: Path) -> None:
    with db.connect() as conn:
        users.add_user(conn, "judy", PASSWORD)
    for name in ("nobody", "judy", "x" * 500, "bad name"):
        with pytest.raises(LoginRefused, match="^wrong user name or password$"):
            users.authenticate(db.connect, name, "not it at all", None)
    with db.connect() as conn:
        users.remove_user(conn, "judy")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_throttle_counts_per_name_and_per_address_and_refuses_long_waits() -> None:
    clock = FakeClock()
    t = throttle.Throttle(clock=clock, sleep=clock.sleep)
    for n in range(11):  # one address trying a new name each time: the address key slows it down
        keys = [f"name:user{n}", "address:198.51.100.1"]
        t.wait_turn(keys)
    assert clock.slept == pytest.approx([throttle.delay_after(n) for n in range(1, 11)])
    with pytest.raises(LoginRefused, match=r"too many wrong passwords .* try again in \d+ s"):
        t.wait_turn(["name:someone", "address:198.51.100.1"])  # the next slot is 10.24 s away: refused unchecked
    waited = len(clock.slept)
    t.wait_turn(["name:someone", "address:203.0.113.9"])  # another name from another address: no wait
    assert len(clock.slept) == waited
    t.succeeded(["name:user3", "address:198.51.100.1"])  # a right password clears its keys
    t.wait_turn(["name:user3", "address:198.51.100.1"])
    assert len(clock.slept) == waited


def test_parallel_attempts_queue_instead_of_guessing_side_by_side() -> None:
    clock = FakeClock()
    t = throttle.Throttle(clock=clock, sleep=lambda s: None)  # no time passes: all sent at once, none answered
    keys = ["name:mallory-target", "address:192.0.2.66"]
    sent = 0
    with pytest.raises(LoginRefused):
        while sent < 100:  # each counts as wrong until it proves right, so their slots spread out
            sent += 1
            t.wait_turn(keys)
    assert sent == 11  # the 11th slot is 10.23 s away: as many as one after the other, not 99


def test_policy_rules() -> None:
    assert all(policy.is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"))
    assert not any(policy.is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com", "", None))
    assert not policy.login_required(users=False, oidc=False, address="127.0.0.1")
    assert policy.login_required(users=True, oidc=False, address="127.0.0.1")
    assert policy.login_required(users=False, oidc=False, address=None)  # Streamlit's default: every interface
    base = {"redirect_uri": "https://cbir.example.com/oauth2callback", "cookie_secret": "x" * 32}
    provider = {"client_id": "id", "client_secret": "s", "server_metadata_url": "https://idp/.well-known"}
    assert policy.oidc_providers(base | provider) == ["default"]
    assert policy.oidc_providers(base | {"okta": provider, "broken": {"client_id": "id"}}) == ["okta"]
    assert policy.oidc_providers({"okta": provider}) == []  # no redirect_uri / cookie_secret
    allowed = ["alice@example.com", "@team.example.org"]
    assert policy.oidc_admitted("Alice@Example.com", True, allowed)
    assert policy.oidc_admitted("bob@team.example.org", None, allowed)
    assert not policy.oidc_admitted("bob@team.example.org", False, allowed)  # the provider did not verify it
    assert not policy.oidc_admitted("eve@example.com", True, allowed)
    assert not policy.oidc_admitted("eve@evil.example.org@team.example.org", True, [])


def test_session_lifetime_setting() -> None:
    assert settings({}).session_minutes == 480
    assert settings({"CBIR_SESSION_MINUTES": "0.5"}).session_minutes == 0.5
    with pytest.raises(ConfigError, match="CBIR_SESSION_MINUTES must be a positive number of minutes"):
        settings({"CBIR_SESSION_MINUTES": "0"})


# --- the gate, through AppTest --------------------------------------------------------------------------------


def logged_in(password: str = PASSWORD) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    next(t for t in at.text_input if t.label == "User name").input("kate")
    next(t for t in at.text_input if t.label == "Password").input(password)
    next(b for b in at.button if b.label == "Log in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shows_login_form(at: AppTest) -> bool:
    return [t.label for t in at.text_input] == ["User name", "Password"] and [t.value for t in at.title] == ["cbir"]


def test_sessions_end_on_expiry_removal_and_password_change(cbir_home: Path) -> None:
    with db.connect() as conn:
        users.add_user(conn, "kate", PASSWORD)
    try:
        at = logged_in("wrong password!")
        assert shows_login_form(at) and "wrong user name or password" in texts(at)
        at = logged_in()
        assert at.title[0].value == "cbir: reverse image search" and "Logged in as kate" in texts(at)

        user, since = at.session_state[login.SESSION_KEY]
        lifetime = settings().session_minutes * 60
        at.session_state[login.SESSION_KEY] = (user, since - lifetime + 60)  # logged in a minute short of it
        at.run()
        assert "Logged in as kate" in texts(at)
        at.session_state[login.SESSION_KEY] = (user, since - lifetime - 1)  # logged in longer ago than it
        at.run()
        assert shows_login_form(at) and "Your session expired" in texts(at)

        at = logged_in()
        with db.connect() as conn:  # what `cbir users add kate --replace` does
            assert users.add_user(conn, "kate", "a brand new password", replace=True) is False
        at.run()
        assert shows_login_form(at) and "password changed" in texts(at)

        at = logged_in("a brand new password")
        next(b for b in at.button if b.label == "Log out").click().run()
        assert shows_login_form(at)

        at = logged_in("a brand new password")
        with db.connect() as conn:
            users.remove_user(conn, "kate")
        at.run()  # no user left on a loopback server: the session ends, and the dashboard opens as before logins
        assert "Your account was removed" in texts(at) and at.title[0].value == "cbir: reverse image search"
    finally:
        with db.connect() as conn:
            if any(a.name == "kate" for a in users.list_users(conn)):
                users.remove_user(conn, "kate")


def test_without_users_loopback_opens_and_any_other_address_shows_only_how_to_add_one(cbir_home: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert at.title[0].value == "cbir: reverse image search"  # as before logins existed
    old = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    finally:
        st_config.set_option("server.address", old)
    assert not at.exception and not at.title and len(at.error) == 1
    assert "listens on 0.0.0.0 and no login is configured: add a user with `cbir users add NAME`" in at.error[0].value


def test_oidc_configured_shows_the_providers_button(cbir_home: Path) -> None:
    """What can be checked without an identity provider: the button appears beside the form, and nothing else.

    Following it through a provider: tests/test_browser_oidc.py.
    """
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "a-long-random-secret-for-the-test",
        "okta": {"client_id": "i", "client_secret": "s", "server_metadata_url": "https://idp.invalid/.well-known"},
    }
    at.secrets["cbir"] = {"oidc_allowed": ["@example.com"]}
    at.run()
    assert not at.exception and [t.value for t in at.title] == ["cbir"]  # the login page's, no page's
    assert [b.label for b in at.button] == ["Log in with okta"]
    assert not at.text_input  # no local users here: no password form


# --- cbir serve --host ----------------------------------------------------------------------------------------


def test_serve_on_a_public_address_without_users_refuses_in_one_line(cbir_home: Path) -> None:
    proc = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--no-open", timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "--host 0.0.0.0 would expose the dashboard without a login: add a user first" in proc.stderr, proc.stderr
    assert "dashboard:" not in proc.stdout  # nothing started


def test_serve_decides_on_a_login_without_importing_streamlit(cbir_home: Path) -> None:
    """The refusal comes from cbir.auth (the rule the dashboard uses too), before anything of Streamlit loads."""
    code = (
        "import atexit, sys; atexit.register(lambda: print('streamlit loaded:', 'streamlit' in sys.modules));"
        "sys.argv = ['cbir', 'serve', '--host', '0.0.0.0', '--no-open']; from cbir.cli import main; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "would expose the dashboard without a login" in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "streamlit loaded: False"


def test_st_login_counts_as_a_login_only_with_an_allow_list(cbir_home: Path, tmp_path: Path) -> None:
    """Streamlit's secrets files, read as Streamlit merges them: the working folder's sections replace the user's."""
    user, work = tmp_path / "user.toml", tmp_path / "work.toml"
    provider = 'client_id = "i"\nclient_secret = "s"\nserver_metadata_url = "https://idp.invalid/.well-known"\n'
    user.write_text(
        '[auth]\nredirect_uri = "http://127.0.0.1:8501/oauth2callback"\ncookie_secret = "a-long-random-secret"\n'
        f"[auth.okta]\n{provider}"
    )
    files = [user, work, tmp_path / "missing.toml"]
    with db.connect() as conn:
        assert not secrets.login_configured(conn, secrets.read_secrets(files))  # a provider, but nobody allowed
        work.write_text('[cbir]\noidc_allowed = ["@example.com"]\n')
        assert secrets.login_configured(conn, secrets.read_secrets(files))
        work.write_text('[cbir]\noidc_allowed = ["@example.com"]\n[auth]\ncookie_secret = "x"\n')
        assert not secrets.login_configured(conn, secrets.read_secrets(files))  # [auth] replaced: no provider left
        work.write_text("[cbir\n")
        with pytest.raises(ConfigError, match="work.toml cannot be read as TOML"):
            secrets.read_secrets(files)
    assert [str(p) for p in secrets.secrets_files()] == st_config.get_option("secrets.files")  # Streamlit's own


def test_serve_on_a_public_address_with_a_user_starts(cbir_home: Path, tmp_path: Path) -> None:
    """It listens on 0.0.0.0; the test talks to it over 127.0.0.1 only and stops it by its pid."""
    assert add("leo").returncode == 0
    port = free_port()
    command = [sys.executable, "-m", "cbir", "serve", "--host", "0.0.0.0", "--port", str(port), "--no-open"]
    try:
        with running(command, port, tmp_path / "serve.log", cwd=tmp_path):  # polls 127.0.0.1:port
            listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
            assert [line.split()[3] for line in listening.splitlines()] == [f"0.0.0.0:{port}"]
    finally:
        run_cli("users", "remove", "leo", check=True)
