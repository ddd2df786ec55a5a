"""The dashboard's local accounts (`cbir_private.dashboard_users`, migrations/050_users.sql): the SQL only.

Hashing, checking and throttling are cbir.auth's; this module never sees a password, only its argon2 hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    created_at: datetime
    password_changed_at: datetime


_COLUMNS = "name, password_hash, created_at, password_changed_at"


def any_account(conn: psycopg.Connection) -> bool:
    """Whether at least one account exists (then the dashboard asks everyone to log in)."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM cbir_private.dashboard_users)").fetchone()[0]


def account(conn: psycopg.Connection, name: str) -> Account | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM cbir_private.dashboard_users WHERE name = %s", (name,)).fetchone()
    return Account(*row) if row else None


def accounts(conn: psycopg.Connection) -> list[Account]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM cbir_private.dashboard_users ORDER BY name")
    return [Account(*r) for r in rows]


def insert_account(conn: psycopg.Connection, name: str, password_hash: str) -> bool:
    """Add an account; False (nothing changed) when the name is taken."""
    cur = conn.execute(
        "INSERT INTO cbir_private.dashboard_users (name, password_hash) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (name, password_hash),
    )
    return cur.rowcount == 1


def set_password_hash(conn: psycopg.Connection, name: str, password_hash: str, changed: bool = True) -> bool:
    """Store a new hash; with changed=True (a new password) open sessions of the account end. False: no such name.

    changed=False is for re-hashing the same password with stronger parameters at login.
    """
    cur = conn.execute(
        "UPDATE cbir_private.dashboard_users SET password_hash = %s,"
        " password_changed_at = CASE WHEN %s THEN clock_timestamp() ELSE password_changed_at END WHERE name = %s",
        (password_hash, changed, name),
    )
    return cur.rowcount == 1


def delete_account(conn: psycopg.Connection, name: str) -> bool:
    cur = conn.execute("DELETE FROM cbir_private.dashboard_users WHERE name = %s", (name,))
    return cur.rowcount == 1
