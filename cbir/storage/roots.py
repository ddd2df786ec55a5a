"""The files and folders given to `cbir ingest` (`ingest_roots`, migrations/050_users.sql), stored resolved.

The dashboard's query-by-path reads files under these only (cbir.retrieval.paths), so a login to the dashboard
is not a way to read the rest of the server's files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
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
