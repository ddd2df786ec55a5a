"""When the dashboard asks for a login, which identity providers are configured, and when a session ends.

The rule: with any local user (`cbir users add`) or an OIDC provider configured, every visitor logs in.
With neither, the dashboard opens without a login only on a loopback address (as before logins existed);
on any other address it shows nothing but how to add a user, so `streamlit run --server.address 0.0.0.0`
cannot expose it by accident either.
"""

from __future__ import annotations

import importlib.util
import ipaddress
from collections.abc import Mapping
from typing import Any

OIDC_KEYS = ("client_id", "client_secret", "server_metadata_url")  # what st.login needs of a provider


def is_loopback(host: str | None) -> bool:
    """Whether a listening address is reachable from this machine only; unset means every interface."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def oidc_providers(auth: Mapping[str, Any] | None) -> list[str]:
    """Providers st.login can use from secrets.toml's [auth] section ("default" for keys directly in it)."""
    if not auth or not all(auth.get(k) for k in ("redirect_uri", "cookie_secret")):
        return []
    found = ["default"] if all(auth.get(k) for k in OIDC_KEYS) else []
    return found + [
        name
        for name, section in auth.items()
        if isinstance(section, Mapping) and "_" not in name and all(section.get(k) for k in OIDC_KEYS)
    ]


def usable_oidc_providers(secrets: Mapping[str, Any]) -> list[str]:
    """The st.login providers of secrets.toml, when `[cbir] oidc_allowed` says who of their accounts may enter
    and Authlib (which st.login needs: `pip install "cbir[oidc]"`) is installed."""
    allowed = (secrets.get("cbir") or {}).get("oidc_allowed")
    usable = allowed and importlib.util.find_spec("authlib") is not None
    return oidc_providers(secrets.get("auth")) if usable else []


def login_required(users: bool, oidc: bool, address: str | None) -> bool:
    return users or oidc or not is_loopback(address)


def oidc_admitted(email: str | None, verified: bool | None, allowed: list[str]) -> bool:
    """Whether an identity from the provider may enter: its address, or its "@domain", is on the allow-list.

    A provider that says the address is unverified (`email_verified` false) is not trusted with it.
    """
    if not email or verified is False or "@" not in email:
        return False
    email = email.lower()
    domain = "@" + email.rsplit("@", 1)[1]
    return any(entry.lower() in (email, domain) for entry in allowed if isinstance(entry, str))
