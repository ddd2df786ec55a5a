"""The SQL of keeping a collection true to its folders: adding and forgetting paths and images, moves, relabels.

Every change is written in batches, one transaction each, with the same guarantee as ingest: a process killed
at any moment leaves each batch before or after, never an image without a path (images left without one are
deleted in the same transaction as their last path) nor a path without an image (a foreign key). Deleting an
image deletes, by the schema's cascades, its embeddings for every model, its map points, its stored model
inputs and the evaluation neighbours that name it. Which category or first path an image should have is the
caller's rule (`settle`); this module only reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg


@dataclass(frozen=True)
class ImageState:
    """What the category rule needs about one image: its category, first path and every current path."""

    id: int
    category: str | None
    path: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class ImageUpdate:
    id: int
    category: str | None
    path: str


Settle = Callable[[list[ImageState]], list[ImageUpdate]]


@dataclass
class BatchResult:
    """What one batch transaction did."""

    paths_removed: int = 0
    images_removed: int = 0
    relabelled: set[int] = field(default_factory=set)  # ids of images whose category changed


_UNDER = (
    "EXISTS (SELECT 1 FROM unnest(%(prefixes)s::text[]) p"
    " WHERE ip.path = p OR starts_with(ip.path, rtrim(p, '/') || '/'))"
)


def stored_paths_under(conn: psycopg.Connection, prefixes: Sequence[str]) -> dict[str, tuple[int, str]]:
    """path -> (image id, sha256) of every stored path equal to or under one of the prefixes."""
    rows = conn.execute(
        f"SELECT ip.path, i.id, i.sha256 FROM image_paths ip JOIN images i ON i.id = ip.image_id WHERE {_UNDER}",
        {"prefixes": list(prefixes)},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def all_paths(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT path FROM image_paths ORDER BY path")]


def image_ids_for(conn: psycopg.Connection, sha256s: Sequence[str]) -> dict[str, int]:
    rows = conn.execute("SELECT sha256, id FROM images WHERE sha256 = ANY(%s)", (list(sha256s),))
    return dict(rows.fetchall())


def image_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM images").fetchone()[0]


@dataclass
class RemovalPlan:
    """What forgetting a set of paths would do, counted before anything changes."""

    paths: int
    images: int  # images left without a path, so removed with their embeddings, map points and inputs
    kept: int  # images that lose a path but keep another
    per_category: list[tuple[str | None, int]]  # removed images per category, most first
    per_model: list[tuple[str, int]]  # embeddings removed per model
    total_images: int  # images in the collection now

    @property
    def everything(self) -> bool:
        return self.total_images > 0 and self.images == self.total_images


_FLAGS = f"WITH flags AS (SELECT ip.image_id, {_UNDER} AS under FROM image_paths ip),"
_PER_IMAGE = (
    f"{_FLAGS} per_image AS (SELECT image_id, count(*) FILTER (WHERE under) AS gone, bool_and(under) AS removed"
    " FROM flags GROUP BY image_id HAVING bool_or(under)) "
)


def removal_plan(conn: psycopg.Connection, prefixes: Sequence[str]) -> RemovalPlan:
    """Count what removing every stored path at or under `prefixes` would remove (reads only, one snapshot)."""
    params = {"prefixes": list(prefixes)}
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        paths, images, kept = conn.execute(
            f"{_PER_IMAGE}SELECT coalesce(sum(gone), 0), count(*) FILTER (WHERE removed),"
            " count(*) FILTER (WHERE NOT removed) FROM per_image",
            params,
        ).fetchone()
        per_category = conn.execute(
            f"{_PER_IMAGE}SELECT i.category, count(*) FROM per_image g JOIN images i ON i.id = g.image_id"
            " WHERE g.removed GROUP BY i.category ORDER BY count(*) DESC, i.category",
            params,
        ).fetchall()
        per_model = conn.execute(
            f"{_PER_IMAGE}SELECT m.name, count(*) FROM per_image g JOIN embeddings e ON e.image_id = g.image_id"
            " JOIN models m ON m.id = e.model_id WHERE g.removed GROUP BY m.id, m.name ORDER BY m.id",
            params,
        ).fetchall()
        total = image_count(conn)
    return RemovalPlan(
        int(paths), images, kept, [(r[0], r[1]) for r in per_category], [(r[0], r[1]) for r in per_model], total
    )


# -- batched changes -------------------------------------------------------------------------------------------


def _states(conn: psycopg.Connection, image_ids: Sequence[int]) -> list[ImageState]:
    rows = conn.execute(
        "SELECT i.id, i.category, i.path, array_agg(ip.path ORDER BY ip.path) FROM images i"
        " JOIN image_paths ip ON ip.image_id = i.id WHERE i.id = ANY(%s) GROUP BY i.id ORDER BY i.id",
        (list(image_ids),),
    )
    return [ImageState(r[0], r[1], r[2], tuple(r[3])) for r in rows]


def _apply(conn: psycopg.Connection, states: list[ImageState], settle: Settle, result: BatchResult) -> None:
    """Write the rule's updates for these images (only what differs), noting the relabelled ones."""
    before = {s.id: s for s in states}
    updates = [u for u in settle(states) if (u.category, u.path) != (before[u.id].category, before[u.id].path)]
    if not updates:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE images SET category = %s, path = %s WHERE id = %s", [(u.category, u.path, u.id) for u in updates]
        )
    result.relabelled |= {u.id for u in updates if u.category != before[u.id].category}


def add_paths(conn: psycopg.Connection, pairs: Sequence[tuple[str, int]], settle: Settle) -> BatchResult:
    """Record new paths of stored images ((path, image id) pairs) and settle those images, in one transaction."""
    result = BatchResult()
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO image_paths (path, image_id) SELECT %s, id FROM images WHERE id = %s"
            " ON CONFLICT (path) DO NOTHING",
            sorted(pairs),
        )
        _apply(conn, _states(conn, sorted({i for _, i in pairs})), settle, result)
    return result


def remove_paths(
    conn: psycopg.Connection, paths: Sequence[str], settle: Settle, repoint: Sequence[tuple[str, int]] = ()
) -> BatchResult:
    """Forget paths, delete the images left without one, and settle the others, in one transaction.

    repoint: (path, image id) pairs of stored paths whose file now holds other stored bytes: the path moves to
    that image (its old image may be left without a path, and then goes).
    """
    result = BatchResult()
    with conn.transaction(), conn.cursor() as cur:
        old = cur.execute(
            "DELETE FROM image_paths WHERE path = ANY(%s) RETURNING image_id", (sorted(paths),)
        ).fetchall()
        result.paths_removed = len(old)
        touched = {r[0] for r in old}
        for path, image_id in sorted(repoint):
            row = cur.execute(
                "UPDATE image_paths SET image_id = %s FROM (SELECT image_id FROM image_paths WHERE path = %s) o"
                " WHERE path = %s RETURNING o.image_id",
                (image_id, path, path),
            ).fetchone()
            if row is not None:
                touched |= {row[0], image_id}
        gone = cur.execute(
            "DELETE FROM images i WHERE i.id = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM image_paths ip WHERE ip.image_id = i.id) RETURNING i.id",
            (sorted(touched),),
        ).fetchall()
        result.images_removed = len(gone)
        _apply(conn, _states(conn, sorted(touched - {r[0] for r in gone})), settle, result)
    return result


def matches(conn: psycopg.Connection, prefixes: Sequence[str]) -> dict[str, int]:
    """How many stored paths are at or under each prefix."""
    rows = conn.execute(
        "SELECT p, count(ip.path) FROM unnest(%s::text[]) p LEFT JOIN image_paths ip"
        " ON ip.path = p OR starts_with(ip.path, rtrim(p, '/') || '/') GROUP BY p",
        (list(prefixes),),
    )
    return dict(rows.fetchall())


def paths_under(conn: psycopg.Connection, prefixes: Sequence[str]) -> list[str]:
    """Stored paths at or under the prefixes, sorted (what `cbir remove` forgets)."""
    rows = conn.execute(
        f"SELECT ip.path FROM image_paths ip WHERE {_UNDER} ORDER BY ip.path", {"prefixes": list(prefixes)}
    )
    return [r[0] for r in rows]


def images_under(conn: psycopg.Connection, prefixes: Sequence[str] | None) -> list[int]:
    """Ids of images with a path at or under the prefixes (None: every image), in id order."""
    if prefixes is None:
        return [r[0] for r in conn.execute("SELECT id FROM images ORDER BY id")]
    rows = conn.execute(
        f"SELECT DISTINCT ip.image_id FROM image_paths ip WHERE {_UNDER} ORDER BY ip.image_id",
        {"prefixes": list(prefixes)},
    )
    return [r[0] for r in rows]


def settle_images(conn: psycopg.Connection, image_ids: Sequence[int], settle: Settle) -> BatchResult:
    """Apply the category rule to these images in one transaction (relabel, and sync's last step)."""
    result = BatchResult()
    with conn.transaction():
        _apply(conn, _states(conn, image_ids), settle, result)
    return result


def image_states(conn: psycopg.Connection, image_ids: Sequence[int]) -> list[ImageState]:
    """Current category, first path and paths of these images (for dry runs)."""
    return _states(conn, image_ids)
