"""Where the database is (the embedded server or CBIR_DATABASE_URL), and connections and pools to it.

The embedded server's life cycle (start, create the database, stop) is in `cbir.storage.embedded`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from cbir.config import settings
from cbir.errors import DatabaseUnavailable, first_line
from cbir.storage import embedded
from cbir.storage.migrate import apply_migrations


def database_url() -> str:
    """The libpq URL of the database in use, starting the embedded server if needed."""
    s = settings()
    if s.database_url:
        return s.database_url
    return embedded.database_url()


_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.IGNORECASE)


def describe_url(url: str) -> str:
    """The URL (or key=value DSN) with any password masked, for messages, logs and pages."""
    masked = _PASSWORD_PARAM.sub(r"\1***", url)  # ?password=... and key=value DSNs
    parts = urlsplit(masked)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def connect(url: str | None = None) -> psycopg.Connection:
    """One connection with pgvector types registered and migrations applied."""
    url = url or database_url()
    try:
        conn = psycopg.connect(url, autocommit=True)  # explicit conn.transaction() blocks only
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database at {describe_url(url)}: {first_line(exc)}") from exc
    try:
        apply_migrations(conn)
    except psycopg.Error as exc:  # a database cbir did not leave this way, or damaged: say so in one line
        conn.close()
        raise DatabaseUnavailable(f"cannot apply the migrations to {describe_url(url)}: {first_line(exc)}") from exc
    register_vector(conn)
    return conn


@contextlib.contextmanager
def connection(conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
    """The caller's connection when given, else a new one (closed afterwards): for API functions taking `conn`."""
    if conn is not None:
        yield conn
        return
    with connect() as own:
        yield own


def check_connection(conn: psycopg.Connection) -> None:
    """A pool's check before lending a connection: a dead one is dropped, and a dead embedded server restarted."""
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.OperationalError:
        if not settings().database_url:
            database_url()  # start the embedded server again before the pool reconnects
        raise


@cache
def pool(url: str | None = None, max_size: int = 8) -> ConnectionPool:
    """A shared connection pool for long-lived callers (dashboard, load tests)."""
    url = url or database_url()
    with connect(url):
        pass  # apply migrations once before the pool hands out connections
    return open_pool(url, max_size)


def open_pool(
    url: str, max_size: int, configure: Callable[[psycopg.Connection], None] | None = None, timeout: float = 30
) -> ConnectionPool:
    """An opened pool of autocommit connections with vector types, checked before each loan.

    `timeout` bounds each wait for a free connection. A pool that cannot open is closed, so a failing
    database does not leave pools behind that keep reconnecting.
    """
    p = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        configure=configure or _configure,
        check=check_connection,
        kwargs={"autocommit": True},
        timeout=timeout,
        open=False,
    )
    try:
        p.open(wait=True, timeout=30)
    except BaseException:
        p.close()
        raise
    return p


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)


def server_versions(conn: psycopg.Connection) -> tuple[str, str]:
    """(Postgres version, pgvector version) of the connected server."""
    server = conn.execute("SHOW server_version").fetchone()[0]
    vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    return server, vector


def describe_location() -> str:
    """Which database is in use, for error messages, without starting anything or showing a password."""
    s = settings()
    return describe_url(s.database_url) if s.database_url else f"the embedded database in {s.pgdata}"


def database_location(url: str | None = None) -> str:
    """The database in use, password masked: a URL users can recognise, and where embedded data lives."""
    s = settings()
    url = url or database_url()
    where = "from CBIR_DATABASE_URL" if s.database_url else f"embedded, data in {s.pgdata}"
    return f"{describe_url(url)} ({where})"
