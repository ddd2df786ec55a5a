"""Whether a dashboard login is configured, decided without Streamlit, so `cbir serve --host` can refuse to expose
an open dashboard before starting anything (and without importing Streamlit to find out).

The st.login half of the rule reads the files Streamlit reads by default (its `secrets.files` option): the user's
~/.streamlit/secrets.toml, then .streamlit/secrets.toml in the working folder, later top-level sections
replacing earlier ones, as Streamlit merges them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import psycopg

from cbir.auth import policy, users
from cbir.errors import ConfigError


def secrets_files(cwd: Path | None = None) -> list[Path]:
    """Streamlit's default secrets files, in the order it merges them."""
    return [Path.home() / ".streamlit" / "secrets.toml", (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]


def read_secrets(files: list[Path] | None = None) -> dict[str, Any]:
    """The merged content of the secrets files that exist (empty without any)."""
    merged: dict[str, Any] = {}
    for path in files if files is not None else secrets_files():
        if not path.is_file():
            continue
        try:
            merged.update(tomllib.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} cannot be read as TOML: {exc}") from exc
    return merged


def login_configured(conn: psycopg.Connection, secrets: dict[str, Any] | None = None) -> bool:
    """Whether any login is set up: a local user, or st.login with an allow-list (policy.usable_oidc_providers)."""
    found = read_secrets() if secrets is None else secrets
    return users.users_configured(conn) or bool(policy.usable_oidc_providers(found))
