"""The dashboard's door: the entry script calls `admitted()` before running any page, and pages run only when
it says so (cbir.auth.policy has the rule). Local accounts log in through a form; teams with an identity
provider use Streamlit's own `st.login` (OIDC, `[auth]` in .streamlit/secrets.toml), admitted only when their
e-mail address is on `[cbir] oidc_allowed` there.

A local login lives in this browser tab's Streamlit session (server memory, nothing in the browser): it ends
on logout, after CBIR_SESSION_MINUTES, when the account is removed or its password changed, and when the tab
is closed or reloaded. An OIDC login is Streamlit's signed cookie; cbir ends it CBIR_SESSION_MINUTES after the
provider issued the identity (its `iat` claim).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import psycopg
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from cbir.auth import policy, users
from cbir.config import settings
from cbir.dashboard import ui
from cbir.errors import DatabaseUnavailable, LoginRefused
from cbir.retrieval import tagging

SESSION_KEY = "cbir_login"  # session_state: (users.User, time.time() at login)


def secrets_section(name: str) -> Mapping[str, Any]:
    """A section of .streamlit/secrets.toml (empty without the file or the section)."""
    return st.secrets.get(name, {}) if st.secrets.load_if_toml_exists() else {}


def oidc_providers() -> list[str]:
    """The st.login providers configured and usable (cbir.auth.policy has the rule)."""
    return policy.usable_oidc_providers({name: secrets_section(name) for name in ("auth", "cbir")})


def admitted() -> bool:
    """Whether this session may see the pages; if not, the login form (or why there is none) is on the page.

    A database that does not answer on a loopback server without OIDC lets the pages run: each of them then
    says the database is down, and nothing they show comes from anywhere else. The rule is asked again on
    every rerun, so a login is required again as soon as the database answers.
    """
    providers = oidc_providers()
    address = st.get_option("server.address")
    try:
        with ui.connection() as conn:
            has_users = users.users_configured(conn)
            if _oidc_session(providers) or _local_session(conn):
                return True
    except DatabaseUnavailable:
        if providers or not policy.is_loopback(address):
            raise
        return True
    if not policy.login_required(has_users, bool(providers), address):
        return True
    if not has_users and not providers:
        st.error(
            f"This dashboard listens on {address or 'every address'} and no login is configured: "
            "add a user with `cbir users add NAME` and reload, or serve it on 127.0.0.1",
            icon=":material/lock:",
        )
        return False
    _login_form(has_users, providers)
    return False


def _local_session(conn: psycopg.Connection) -> bool:
    found = st.session_state.get(SESSION_KEY)
    if found is None:
        return False
    user, since = found
    if time.time() - since > settings().session_minutes * 60:
        _end_session("Your session expired: log in again.")
        return False
    if not users.still_valid(conn, user):
        _end_session("Your account was removed or its password changed: log in again.")
        return False
    return True


def _oidc_session(providers: list[str]) -> bool:
    if not providers or not st.user.get("is_logged_in"):
        return False
    issued = st.user.get("iat") or st.session_state.setdefault("cbir_oidc_seen", time.time())
    if time.time() - float(issued) > settings().session_minutes * 60:
        st.logout()  # deletes Streamlit's identity cookie and starts a new session
        return False
    allowed = secrets_section("cbir").get("oidc_allowed", [])
    if not policy.oidc_admitted(st.user.get("email"), st.user.get("email_verified"), allowed):
        st.error(
            f"{st.user.get('email') or 'This account'} is not allowed on this dashboard "
            "([cbir] oidc_allowed in .streamlit/secrets.toml)",
            icon=":material/lock:",
        )
        st.button("Log out", on_click=st.logout)
        st.stop()
    return True


def _end_session(why: str) -> None:
    st.session_state.clear()  # the login and everything the session looked at (its latest query too)
    st.info(why, icon=":material/lock_clock:")


def _login_form(has_users: bool, providers: list[str]) -> None:
    st.title("cbir")
    st.caption("Log in to see the collection.")
    if has_users:
        with st.form("login", clear_on_submit=True):
            name = st.text_input("User name")
            password = st.text_input("Password", type="password")
            submitted = st.form_submit_button("Log in")
        if submitted:
            try:
                user = users.authenticate(ui.connection, name.strip(), password, _client_address())
            except LoginRefused as exc:
                ui.show_error(exc)
                return
            st.session_state.clear()
            st.session_state[SESSION_KEY] = (user, time.time())
            st.rerun()
    for provider in providers:
        label = "Log in with your identity provider" if provider == "default" else f"Log in with {provider}"
        st.button(label, on_click=st.login, args=() if provider == "default" else (provider,))


def _client_address() -> str | None:
    """The browser's address as the server sees it (None on loopback; a proxy's address behind a proxy)."""
    address = st.context.ip_address
    return address if isinstance(address, str) else None


def session_owner() -> str:
    """Who a share of the SQL console's connections belongs to: the logged-in account (all its tabs), else this
    browser tab's session."""
    found = st.session_state.get(SESSION_KEY)
    if found is not None:
        return f"user:{found[0].name}"
    if oidc_providers() and st.user.get("is_logged_in"):
        return f"oidc:{st.user.get('email')}"
    ctx = get_script_run_ctx()
    return f"session:{ctx.session_id if ctx else 'none'}"


def logout_button() -> None:
    """Who is logged in, and the way out, in the sidebar of every page."""
    found = st.session_state.get(SESSION_KEY)
    if found is not None:
        st.sidebar.caption(f"Logged in as {found[0].name}")
        if st.sidebar.button("Log out", icon=":material/logout:"):
            st.session_state.clear()
            st.rerun()
    elif oidc_providers() and st.user.get("is_logged_in"):
        st.sidebar.caption(f"Logged in as {st.user.get('email') or st.user.get('name')}")
        st.sidebar.button("Log out", icon=":material/logout:", on_click=st.logout)


def who() -> str:
    """Who this session is, for what it writes (tags): the local user, the OIDC identity, or "local"."""
    found = st.session_state.get(SESSION_KEY)
    if found is not None:
        return found[0].name
    if oidc_providers() and st.user.get("is_logged_in"):
        return str(st.user.get("email") or st.user.get("name"))
    return tagging.LOCAL_USER
