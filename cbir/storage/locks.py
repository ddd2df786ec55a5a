"""The maintenance lock: one sync, remove or relabel at a time per database (a session advisory lock)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import psycopg

_MAINTENANCE_LOCK_KEY = 0x63626974  # one sync, remove or relabel at a time per database


@contextlib.contextmanager
def exclusive(conn: psycopg.Connection, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the maintenance lock (a session advisory lock) so two syncs, removes or relabels never interleave.

    on_wait is called once when another session holds it, before waiting for it. A killed holder's lock goes
    with its connection.
    """
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_MAINTENANCE_LOCK_KEY,)).fetchone()[0]:
        if on_wait is not None:
            on_wait()
        conn.execute("SELECT pg_advisory_lock(%s)", (_MAINTENANCE_LOCK_KEY,))
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):  # a lost connection has released it already
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MAINTENANCE_LOCK_KEY,))


def lock_holder(conn: psycopg.Connection) -> int | None:
    """Backend pid of the session holding the maintenance lock, if any."""
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        (_MAINTENANCE_LOCK_KEY,),
    ).fetchone()
    return row[0] if row else None
