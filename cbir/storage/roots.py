"""The files and folders given to `cbir ingest` (`ingest_roots`, migrations/050_users.sql), stored resolved.

The dashboard's query-by-path reads files under these only (cbir.retrieval.paths), so a login to the dashboard
is not a way to read the rest of the server's files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg


def resolved_text(path: str | Path) -> str:
    """The absolute path with every symlink and `..` resolved, as text Postgres accepts (undecodable bytes as \\xNN)."""
    return os.fsencode(os.path.realpath(path)).decode("utf-8", "backslashreplace")


def record_roots(conn: psycopg.Connection, paths: Iterable[str | Path]) -> None:
    """Remember where an ingest looked (resolved), once each."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_roots (path) VALUES (%s) ON CONFLICT DO NOTHING", [(resolved_text(p),) for p in paths]
        )


def roots(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT path FROM ingest_roots ORDER BY path")]


def record_collection_roots(conn: psycopg.Connection, roots: Sequence[str]) -> None:
    """Remember folders given to ingest or sync (for the Home page's check for files that are gone)."""
    if roots:
        conn.execute(
            "INSERT INTO collection_roots (path) SELECT DISTINCT unnest(%s::text[])"
            " ON CONFLICT (path) DO UPDATE SET last_used = now()",
            (list(roots),),
        )


def collection_roots(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT path FROM collection_roots ORDER BY path")]


def forget_roots(conn: psycopg.Connection, prefixes: Sequence[str]) -> None:
    """Forget recorded folders at or under removed prefixes."""
    conn.execute(
        "DELETE FROM collection_roots r WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) p"
        " WHERE r.path = p OR starts_with(r.path, rtrim(p, '/') || '/'))",
        (list(prefixes),),
    )
