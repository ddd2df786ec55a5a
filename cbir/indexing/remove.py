"""`cbir remove` forgets files and folders (and images left without a path); `cbir relabel --from-folders`
recomputes every category with the category rule (cbir.indexing.categories). Both change the collection in
batches of one transaction each (cbir.storage.path_changes), under the maintenance lock, as sync does.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from tqdm import tqdm

from cbir.errors import BadArgument
from cbir.indexing.categories import settler
from cbir.indexing.ingest import display_path
from cbir.storage import db, locks, path_changes
from cbir.storage import roots as root_store
from cbir.storage.path_changes import ImageState, ImageUpdate, RemovalPlan, Settle

CHANGE_BATCH = 1000  # paths or images changed per transaction


def note(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def waiting() -> None:
    note("cbir: waiting for another sync, remove or relabel on this database to finish...")


def batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass
class Removal:
    """What `cbir remove PATH...` would forget: prefixes matched, the plan, and the paths that matched nothing."""

    prefixes: list[str]
    plan: RemovalPlan
    unmatched: list[str]


@dataclass
class RemoveReport:
    paths: int = 0
    images: int = 0


def plan_removal(paths: Sequence[str | Path], conn: psycopg.Connection | None = None) -> Removal:
    """Count what removing these files and folders (whether or not they still exist) would remove."""
    if not paths:
        raise BadArgument("give at least one file or folder to remove")
    prefixes = list(dict.fromkeys(display_path(Path(p)) for p in paths))
    with db.connection(conn) as conn:
        counts = path_changes.matches(conn, prefixes)
        matched = [p for p in prefixes if counts.get(p)]
        plan = path_changes.removal_plan(conn, matched)
    return Removal(matched, plan, [p for p in prefixes if not counts.get(p)])


def remove(
    paths: Sequence[str | Path],
    change_batch: int = CHANGE_BATCH,
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> RemoveReport:
    """Forget every stored path at or under these files and folders, and every image left without a path.

    Image files on disk are never touched. Categories of images that keep another path are left as they
    are (`relabel --from-folders` recomputes them); their first path moves to one that remains.
    """
    if change_batch < 1:
        raise BadArgument("change_batch must be at least 1")
    prefixes = list(dict.fromkeys(display_path(Path(p)) for p in paths))
    report = RemoveReport()
    with db.connection(conn) as conn, locks.exclusive(conn, on_wait=waiting):
        paths = path_changes.paths_under(conn, prefixes)
        settle = settler(relabel=False)
        with tqdm(total=len(paths), desc="remove", unit="path", disable=not progress, dynamic_ncols=True) as bar:
            for batch in batches(paths, change_batch):
                result = path_changes.remove_paths(conn, batch, settle)
                report.paths += result.paths_removed
                report.images += result.images_removed
                bar.update(len(batch))
        root_store.forget_roots(conn, prefixes)
    return report


@dataclass
class RelabelReport:
    images: int  # images looked at (the whole collection)
    changes: Counter = field(default_factory=Counter)  # (old category, new category) -> images
    dry_run: bool = False

    @property
    def relabelled(self) -> int:
        return sum(self.changes.values())


def _recording(settle: Settle, changes: Counter) -> Settle:
    def wrapped(states: list[ImageState]) -> list[ImageUpdate]:
        updates = settle(states)
        before = {s.id: s.category for s in states}
        changes.update((before[u.id], u.category) for u in updates if u.category != before[u.id])
        return updates

    return wrapped


def relabel(
    dry_run: bool = False,
    change_batch: int = CHANGE_BATCH,
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> RelabelReport:
    """Recompute every image's category from its current paths with the category rule (module docstring)."""
    with db.connection(conn) as conn, locks.exclusive(conn, on_wait=waiting):
        ids = path_changes.images_under(conn, None)
        report = RelabelReport(images=len(ids), dry_run=dry_run)
        settle = _recording(settler(relabel=True), report.changes)
        for batch in tqdm(batches(ids, change_batch), desc="relabel", unit="batch", disable=not progress):
            if dry_run:
                settle(path_changes.image_states(conn, batch))
            else:
                path_changes.settle_images(conn, batch, settle)
    return report
