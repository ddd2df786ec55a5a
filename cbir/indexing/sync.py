"""Keep a collection true to its folders: `cbir sync` follows deleted, moved, renamed, changed and new files
(`cbir remove` and `cbir relabel` are in cbir.indexing.remove, the category rule in cbir.indexing.categories);
the Home page's check for stored files that are gone.

Sync compares content, not names: bytes whose sha256 is stored, found at a path that is not, are that
stored image at a new path (a move or a rename keeps its id, embeddings and map point; no model runs);
bytes that are not stored are ingested as `cbir ingest` does. The steps, each in batches of one
transaction (cbir.storage.path_changes): record new paths of stored images; forget paths that are gone,
with images left without a path; ingest new bytes; apply the category rule to every image under the
folders. Each step is recomputed from the disk and the database, so a re-run after a crash finishes the
job and ends where an uninterrupted run would. A folder that is missing or empty while paths are stored
under it is refused: an unmounted disk must not read as "everything was deleted".
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import psycopg
from tqdm import tqdm

from cbir.config import settings
from cbir.errors import BadArgument, BadImage, FolderUnavailable
from cbir.images import read_image_file, sha256_of
from cbir.indexing.categories import category_for, category_of, settler
from cbir.indexing.ingest import IngestReport, discover, display_path, ingest
from cbir.indexing.remove import CHANGE_BATCH, batches, waiting
from cbir.storage import db, locks, path_changes
from cbir.storage import roots as root_store
from cbir.storage.models import list_models
from cbir.storage.path_changes import BatchResult, Settle

# -- sync ------------------------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    roots: list[str]
    dry_run: bool = False
    added: int = 0  # images new to the collection (embedded); in a dry run, files whose bytes are not stored
    moved: int = 0  # stored images found at a new path after losing an old one (moves and renames)
    relabelled: int = 0  # images whose category changed
    removed: int = 0  # images forgotten: no path of theirs is left
    unchanged: int = 0  # paths found where they were, with the same bytes
    copies: int = 0  # new paths of stored images that did not move (copies)
    paths_forgotten: int = 0  # paths gone from disk (or now holding other bytes), removed and kept images alike
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # stored paths that exist but cannot be read
    ingests: list[IngestReport] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Files that ingest could not store (not images, unreadable), once each."""
        return sorted({path: reason for r in self.ingests for path, reason in r.skipped}.items())


@dataclass
class _Found:
    path: Path
    sha256: str | None = None
    error: str | None = None


@dataclass
class _Plan:
    stored: dict[str, tuple[int, str]]  # stored path under the roots -> (image id, sha256)
    gone: list[str] = field(default_factory=list)  # stored paths to forget
    repoint: list[tuple[str, int]] = field(default_factory=list)  # stored paths now holding other stored bytes
    aliases: list[tuple[str, int]] = field(default_factory=list)  # new paths of stored images
    new_bytes: list[Path] = field(default_factory=list)  # files whose bytes are not stored: for ingest
    unchanged: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def moved(self) -> set[int]:
        """Images that lose a path and gain another."""
        losing = {self.stored[p][0] for p in self.gone} | {self.stored[p][0] for p, _ in self.repoint}
        return losing & {i for _, i in self.aliases + self.repoint}


def _refuse_unlisted(exc: OSError) -> None:
    raise FolderUnavailable(
        f"cannot list {exc.filename} ({exc.strerror or exc}): nothing was changed; make it readable and run again"
    )


def _check_roots(paths: Sequence[str | Path]) -> list[Path]:
    if not paths:
        raise BadArgument("give at least one folder or file to sync")
    for path in map(Path, paths):
        if not (path.is_dir() or path.is_file()):
            where = display_path(path)
            raise FolderUnavailable(
                f"{where} is not available (missing, or its disk is not mounted): nothing was changed; "
                f"to forget what is stored under it, run cbir remove {shlex.quote(where)}"
            )
    return [Path(p) for p in paths]


def _hash(path: Path) -> _Found:
    try:
        return _Found(path, sha256=sha256_of(read_image_file(path)))
    except BadImage as exc:
        return _Found(path, error=str(exc))


def _scan(files: list[Path], workers: int, progress: bool) -> dict[str, _Found]:
    """Each file by display path, with its sha256 (or why it cannot be read)."""
    found = {}
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(files), desc="sync: reading", unit="file", disable=not progress, dynamic_ncols=True) as bar,
    ):
        for item in pool.map(_hash, files):
            found[display_path(item.path)] = item
            bar.update()
    return found


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _refuse_empty(roots: list[str], stored: Iterable[str], found: Iterable[str]) -> None:
    """A folder with stored paths under it but no file at all is an unmounted disk until shown otherwise."""
    stored, found = list(stored), list(found)
    for root in roots:
        if not any(_under(p, root) for p in found) and (n := sum(_under(p, root) for p in stored)):
            raise FolderUnavailable(
                f"{root} is empty but {n} stored paths are under it (a disk not mounted?): nothing was changed; "
                f"if its files were deleted on purpose, run cbir remove {shlex.quote(root)}"
            )


def _plan(conn: psycopg.Connection, folders: list[Path], roots: list[str], workers: int, progress: bool) -> _Plan:
    """Compare the files under the roots (read and hashed) with what is stored under them."""
    plan = _Plan(stored=path_changes.stored_paths_under(conn, roots))
    files = list(discover(folders, on_error=_refuse_unlisted))
    _refuse_empty(roots, plan.stored, map(display_path, files))
    found = _scan(files, workers, progress)
    changed: set[str] = set()
    for path, (_, sha) in plan.stored.items():
        item = found.get(path)
        if item is None:
            plan.gone.append(path)
        elif item.error is not None:
            plan.unreadable.append((path, item.error))  # there, but not readable now: kept as it is
        elif item.sha256 == sha:
            plan.unchanged += 1
        else:
            changed.add(path)
    new = {p: f for p, f in found.items() if p not in plan.stored or p in changed}
    known = path_changes.image_ids_for(conn, sorted({f.sha256 for f in new.values() if f.sha256}))
    for path, item in sorted(new.items()):
        image_id = known.get(item.sha256) if item.sha256 else None
        if image_id is None:
            plan.new_bytes.append(item.path)
            if path in changed:
                plan.gone.append(path)  # the old bytes' path goes first; ingest records the new bytes there
        else:
            (plan.repoint if path in changed else plan.aliases).append((path, image_id))
    plan.gone.sort()
    return plan


def _models(conn: psycopg.Connection, models: Sequence[str] | None) -> list[str]:
    """--model values, else every model in the database (new images get the vectors every search needs)."""
    if models:
        return list(models)
    return [m.name for m in list_models(conn)] or [settings().model]


def _preview(conn: psycopg.Connection, roots: list[str], plan: _Plan, relabel: bool) -> tuple[int, int]:
    """(images a sync would relabel, images it would remove), from the plan, without writing anything."""
    losing = {plan.stored[p][0] for p in plan.gone} | {plan.stored[p][0] for p, _ in plan.repoint}
    gaining = {i for _, i in plan.aliases + plan.repoint}
    ids = set(path_changes.images_under(conn, roots)) | losing | gaining
    states = {s.id: s for s in path_changes.image_states(conn, sorted(ids))}
    paths = {i: set(s.paths) for i, s in states.items()}
    for path in plan.gone:
        paths[plan.stored[path][0]].discard(path)
    for path, image_id in plan.repoint:
        paths[plan.stored[path][0]].discard(path)
        paths[image_id].add(path)
    for path, image_id in plan.aliases:
        paths[image_id].add(path)
    removed = sum(not p for p in paths.values())
    relabelled = sum(bool(p) and category_for(p) != states[i].category for i, p in paths.items()) if relabel else 0
    return relabelled, removed


def _write_paths(
    conn: psycopg.Connection, plan: _Plan, settle: Settle, change_batch: int, progress: bool
) -> BatchResult:
    """New paths of stored images first, then the paths that go: a moved image never loses its last path."""
    done = BatchResult()
    removals = [(p, None) for p in plan.gone] + list(plan.repoint)
    total = len(plan.aliases) + len(removals)
    with tqdm(total=total, desc="sync: paths", unit="path", disable=not (progress and total)) as bar:
        for batch in batches(plan.aliases, change_batch):
            done.relabelled |= path_changes.add_paths(conn, batch, settle).relabelled
            bar.update(len(batch))
        for batch in batches(removals, change_batch):
            gone, repoint = [p for p, i in batch if i is None], [(p, i) for p, i in batch if i is not None]
            result = path_changes.remove_paths(conn, gone, settle, repoint)
            done.images_removed += result.images_removed
            done.relabelled |= result.relabelled
            bar.update(len(batch))
    return done


def sync(
    paths: Sequence[str | Path],
    models: Sequence[str] | None = None,
    label: str = "folder",
    dry_run: bool = False,
    batch_size: int = 32,
    change_batch: int = CHANGE_BATCH,
    workers: int = 2,
    progress: bool = True,
    conn: psycopg.Connection | None = None,
) -> SyncReport:
    """Make the collection match the files under `paths` (see the module's docstring); dry_run changes nothing."""
    category_of(Path("x/y"), label)  # validate before any work
    if change_batch < 1:
        raise BadArgument("--change-batch must be at least 1")
    folders = _check_roots(paths)
    roots = [display_path(p) for p in folders]
    report = SyncReport(roots=roots, dry_run=dry_run)
    with db.connection(conn) as conn, locks.exclusive(conn, on_wait=waiting):
        plan = _plan(conn, folders, roots, workers, progress)
        report.unchanged, report.unreadable = plan.unchanged, plan.unreadable
        report.moved = len(plan.moved)
        report.copies = sum(i not in plan.moved for _, i in plan.aliases)
        report.paths_forgotten = len(plan.gone) + len(plan.repoint)
        if dry_run:
            report.relabelled, report.removed = _preview(conn, roots, plan, relabel=label == "folder")
            report.added = len(plan.new_bytes)
            return report
        root_store.record_collection_roots(conn, [r for r, f in zip(roots, folders, strict=True) if f.is_dir()])
        settle = settler(relabel=label == "folder")
        done = _write_paths(conn, plan, settle, change_batch, progress)
        if plan.new_bytes:
            for model in _models(conn, models):
                r = ingest(
                    plan.new_bytes,
                    model,
                    batch_size=batch_size,
                    label=label,
                    workers=workers,
                    progress=progress,
                    conn=conn,
                )
                report.ingests.append(r)
                report.added += r.new_images
        for batch in batches(path_changes.images_under(conn, roots), change_batch):
            done.relabelled |= path_changes.settle_images(conn, batch, settle).relabelled
        report.removed, report.relabelled = done.images_removed, len(done.relabelled)
    return report


# -- the Home page's check -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderCheck:
    """Stored paths under one folder and how many of them no longer exist on disk."""

    folder: str
    recorded: bool  # given to ingest or sync (else: the parent folder of paths stored before roots were kept)
    available: bool  # the folder itself exists
    stored: int
    missing: int

    @property
    def command(self) -> str:
        """What fixes it: sync a folder that is there; remove one that is gone on purpose (sync refuses it)."""
        return f"cbir {'sync' if self.available else 'remove'} {shlex.quote(self.folder)}"


def _groups(paths: list[str], roots: list[str]) -> dict[tuple[str, bool], list[str]]:
    """Stored paths by the outermost recorded root they are under, else by their parent folder."""
    outer = [r for r in roots if not any(o != r and _under(r, o) for o in roots)]
    groups: dict[tuple[str, bool], list[str]] = {}
    for path in paths:
        root = next((r for r in outer if _under(path, r)), None)
        key = (root, True) if root is not None else (str(PurePosixPath(path).parent), False)
        groups.setdefault(key, []).append(path)
    return groups


def check_folders(conn: psycopg.Connection | None = None) -> list[FolderCheck]:
    """Per folder: stored paths and how many are gone from disk (walks each folder once; reads no file)."""
    with db.connection(conn) as conn:
        paths, roots = path_changes.all_paths(conn), root_store.collection_roots(conn)
    checks = []
    for (folder, recorded), stored in sorted(_groups(paths, roots).items()):
        available = Path(folder).is_dir()
        on_disk = {display_path(p) for p in discover([folder])} if available else set()
        missing = sum(p not in on_disk for p in stored)
        checks.append(FolderCheck(folder, recorded, available, len(stored), missing))
    return checks
