"""Apply the numbered SQL files of `cbir/storage/migrations/` once each, in order, safely from several processes.

Plain SQL files rather than Alembic: the schema is small, analysts read it directly, and pgvector's DDL
(extension, operator classes, expression indexes) is clearer as SQL than through an ORM layer. The files
are package data, read with importlib.resources, so an installed wheel migrates exactly as a clone does;
finding none is an error, never a silent no-op.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

from cbir.errors import DatabaseUnavailable

_LOCK_KEY = 0x63626972  # 'cbir': serialises concurrent migrators


def migration_files() -> list[tuple[int, Traversable]]:
    """(version, file) of every migration shipped with the package, in version order."""
    folder = resources.files("cbir.storage") / "migrations"
    files = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = re.match(r"(\d+)_.*\.sql$", entry.name)
        if match:
            files.append((int(match.group(1)), entry))
    if not files:
        raise DatabaseUnavailable(f"no migrations found in {folder}: the cbir installation is incomplete; reinstall it")
    return sorted(files, key=lambda f: f[0])


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations (conn in autocommit mode); returns the names applied."""
    files = migration_files()
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, entry in files:
            if version in done:
                continue
            with conn.transaction():
                conn.execute(entry.read_text())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, entry.name))
            applied.append(entry.name)
    return applied


def applied_migrations(conn: psycopg.Connection) -> list[str]:
    """Names of the migrations applied to this database, oldest first."""
    return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
