"""The dashboard's local accounts: add, list, remove, and check a login (argon2id hashes in the database).

In the database rather than a file under CBIR_HOME: a dashboard on another machine that shares
CBIR_DATABASE_URL sees the same accounts, pg_dump backs them up with the collection, and the table sits in a
schema the SQL console's role cannot read (migrations/050_users.sql).

argon2-cffi's `PasswordHasher` salts each hash and its `verify` compares in constant time. An unknown name is
checked against a dummy hash, so the answer takes as long as for a known one and says nothing about which
names exist. Nothing here logs or stores a password.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cbir.auth.throttle import Throttle
from cbir.errors import BadArgument, LoginRefused
from cbir.storage import users as store

NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")  # also a CHECK in migrations/050_users.sql
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; this bounds the work one attempt can ask for (longer: refused)
THROTTLE = Throttle()  # one per dashboard process: every session's attempts count together


@dataclass(frozen=True)
class User:
    """Who is logged in, and the password version they logged in with (a newer one ends the session)."""

    name: str
    password_changed_at: datetime


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, RFC 9106's low-memory profile (64 MiB, 3 passes)


@cache
def _dummy_hash() -> str:
    return _hasher().hash("no account has this password")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadArgument(f"user name {name!r} must be 1 to 64 letters, digits or . _ @ -")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadArgument(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def add_user(conn: psycopg.Connection, name: str, password: str, replace: bool = False) -> bool:
    """Store a salted hash of the password; True when the account is new, False when `replace` changed one."""
    password_hash = _hasher().hash(check_password(password))
    if store.insert_account(conn, check_name(name), password_hash):
        return True
    if replace and store.set_password_hash(conn, name, password_hash):
        return False
    raise BadArgument(f"user {name!r} exists: cbir users add {name} --replace sets a new password")


def list_users(conn: psycopg.Connection) -> list[store.Account]:
    return store.accounts(conn)


def remove_user(conn: psycopg.Connection, name: str) -> None:
    if not store.delete_account(conn, name):
        raise BadArgument(f"no user named {name!r} (cbir users list shows them)")


def users_configured(conn: psycopg.Connection) -> bool:
    return store.any_account(conn)


def authenticate(
    connection: Callable[[], AbstractContextManager[psycopg.Connection]], name: str, password: str, address: str | None
) -> User:
    """The user, when the name and password match; else LoginRefused, after a wait that grows with failures.

    Takes a way to connect rather than a connection: no pooled connection is held while an attempt waits.
    """
    keys = [f"name:{name[:64]}", f"address:{address or 'local'}"]
    THROTTLE.wait_turn(keys)
    with connection() as conn:
        found = store.account(conn, name) if NAME.fullmatch(name) else None
        if len(password) > MAX_PASSWORD:  # no stored password is this long; never cut it to one that is
            raise LoginRefused("wrong user name or password")
        if not _verify(found.password_hash if found else _dummy_hash(), password) or found is None:
            raise LoginRefused("wrong user name or password")
        THROTTLE.succeeded(keys)
        if _hasher().check_needs_rehash(found.password_hash):  # parameters raised since it was hashed
            store.set_password_hash(conn, name, _hasher().hash(password), changed=False)
    return User(found.name, found.password_changed_at)


def still_valid(conn: psycopg.Connection, user: User) -> bool:
    """Whether the account still exists with the password the session logged in with."""
    found = store.account(conn, user.name)
    return found is not None and found.password_changed_at == user.password_changed_at


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
