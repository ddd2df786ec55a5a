"""The collection generation: a counter every change to the collection bumps (with a log of what changed), so a
stored map or evaluation run can tell what changed since it was made."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Changes:
    """Changes to the collection logged after some generation."""

    added: int = 0
    removed: int = 0
    relabelled: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.relabelled)

    def summary(self) -> str:
        """'4 images were added, 5 removed and 5 relabelled' (only the nonzero parts)."""
        items = [
            (n, what)
            for n, what in ((self.added, "added"), (self.removed, "removed"), (self.relabelled, "relabelled"))
            if n
        ]
        (n, what), rest = items[0], [f"{m} {w}" for m, w in items[1:]]
        parts = [f"{n} {'image was' if n == 1 else 'images were'} {what}", *rest]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def generation(conn: psycopg.Connection) -> int:
    """The collection's current generation (read before reading vectors, so a map or run records no later one)."""
    return conn.execute("SELECT generation FROM collection_generation").fetchone()[0]


def changes_since(conn: psycopg.Connection, since: int) -> Changes:
    row = conn.execute(
        "SELECT coalesce(sum(added), 0), coalesce(sum(removed), 0), coalesce(sum(relabelled), 0)"
        " FROM collection_changes WHERE generation > %s",
        (since,),
    ).fetchone()
    return Changes(*map(int, row))


def stale_map(conn: psycopg.Connection, projection_id: int) -> Changes | None:
    """Images added or removed since a stored map was made (relabels do not matter: colours are read live)."""
    row = conn.execute("SELECT generation FROM projections WHERE id = %s", (projection_id,)).fetchone()
    if row is None:
        return None
    changes = changes_since(conn, row[0])
    changes = Changes(added=changes.added, removed=changes.removed)
    return changes or None


def stale_run(conn: psycopg.Connection, run_id: int) -> Changes | None:
    """Images added, removed or relabelled since a stored evaluation run was made."""
    row = conn.execute("SELECT generation FROM evaluation_runs WHERE id = %s", (run_id,)).fetchone()
    return (changes_since(conn, row[0]) or None) if row else None


def stale_suspects(conn: psycopg.Connection, run_id: int) -> Changes | None:
    """Images added, removed or relabelled since a stored suspects run was made (any of them moves scores)."""
    row = conn.execute("SELECT generation FROM suspect_runs WHERE id = %s", (run_id,)).fetchone()
    return (changes_since(conn, row[0]) or None) if row else None
