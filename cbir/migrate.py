"""Apply the numbered SQL files in migrations/ once each, in order, safely from several processes at once.

Plain SQL files rather than Alembic: the schema is small, analysts read it directly, and pgvector's DDL
(extension, operator classes, expression indexes) is clearer as SQL than through an ORM layer.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_KEY = 0x63626972  # 'cbir': serialises concurrent migrators


def migration_files() -> list[tuple[int, Path]]:
    files = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = re.match(r"(\d+)_", path.name)
        if match:
            files.append((int(match.group(1)), path))
    return files


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations (conn in autocommit mode); returns the names applied."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, path in migration_files():
            if version in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, path.name))
            applied.append(path.name)
    return applied
