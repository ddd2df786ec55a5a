"""The files and folders given to `cbir ingest` and `cbir sync` (`collection_roots`, migrations/090_*.sql).

Each is kept in two spellings: as given (absolute, as image_paths stores the paths under it: the Home page's
check for files gone groups by it) and resolved (symlinks followed: the dashboard's query-by-path reads files
under these only, cbir.retrieval.paths, so a login to the dashboard is not a way to read the rest of the
server's files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import psycopg


class Root(NamedTuple):
    """One recorded root."""

    path: str  # absolute, as given (what image_paths holds under it)
    resolved: str  # symlinks and `..` resolved (what query paths are checked against)
    folder: bool  # else a file given on its own


def as_text(path: str | Path) -> str:
    """Path text Postgres accepts, even for file names that are not valid UTF-8 (undecodable bytes as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def resolved_text(path: str | Path) -> str:
    """The absolute path with every symlink and `..` resolved, as text Postgres accepts."""
    return as_text(os.path.realpath(path))


def record_roots(conn: psycopg.Connection, paths: Iterable[str | Path]) -> None:
    """Remember where an ingest or sync looked (as given and resolved), once each; a repeat updates last_used."""
    rows = [(as_text(os.path.abspath(p)), resolved_text(p), os.path.isdir(p)) for p in paths]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO collection_roots (path, resolved, folder) VALUES (%s, %s, %s)"
            " ON CONFLICT (path, resolved) DO UPDATE SET folder = EXCLUDED.folder, last_used = now()",
            rows,
        )


def roots(conn: psycopg.Connection) -> list[Root]:
    """Every recorded root, by path."""
    rows = conn.execute("SELECT path, resolved, folder FROM collection_roots ORDER BY path, resolved")
    return [Root(*r) for r in rows]


def forget_roots(conn: psycopg.Connection, prefixes: Sequence[str]) -> None:
    """Forget recorded roots at or under removed prefixes (spelled as given)."""
    conn.execute(
        "DELETE FROM collection_roots r WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) p"
        " WHERE r.path = p OR starts_with(r.path, rtrim(p, '/') || '/'))",
        (list(prefixes),),
    )
