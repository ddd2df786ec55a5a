"""Tag and untag images named by id or path: what `cbir tag` and the dashboard's Tag buttons call.

A reference is an image id (digits, unless a file of that name exists, as for `cbir search`) or a file path
(any of an image's paths, relative to the working folder or absolute). Every reference must name a stored
image: one unknown reference refuses the whole call, so a typo never tags half a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg

from cbir.errors import BadArgument
from cbir.indexing.ingest import display_path
from cbir.storage import db
from cbir.storage import tags as store

Ref = int | str | Path
LOCAL_USER = "local"  # who tags without a login: the CLI, a dashboard on loopback with no accounts


def split_refs(refs: Iterable[Ref]) -> tuple[list[int], list[str]]:
    """(image ids, absolute paths as stored) of these references."""
    ids, paths = [], []
    for ref in refs:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and not Path(ref).exists()):
            ids.append(int(ref))
        elif str(ref).strip():
            paths.append(display_path(Path(ref)))
    return ids, paths


def resolve(conn: psycopg.Connection, refs: Sequence[Ref]) -> list[int]:
    """The stored image ids these references name, or BadArgument naming the first unknown ones."""
    ids, paths = split_refs(refs)
    if not ids and not paths:
        raise BadArgument("give at least one image id or path")
    found = store.find_images(conn, ids, paths)
    unknown = [f"id {i}" for i in found.unknown_ids] + found.unknown_paths
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise BadArgument(f"{len(unknown)} of the {len(ids) + len(paths)} images given are not stored: {shown}")
    return found.image_ids


def read_refs(path: Path) -> list[str]:
    """The references in a file, one a line (blank lines and lines starting with # are skipped)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise BadArgument(f"cannot read {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def tag(
    tag: str,
    refs: Sequence[Ref],
    who: str = LOCAL_USER,
    note: str | None = None,
    conn: psycopg.Connection | None = None,
) -> int:
    """Give these images the tag (in one transaction); returns how many did not have it yet."""
    store.check_tag(tag)
    with db.connection(conn) as c:
        return store.add(c, tag, resolve(c, refs), who, note)


def untag(tag: str, refs: Sequence[Ref] | None = None, conn: psycopg.Connection | None = None) -> int:
    """Take the tag off these images (None: off every image); returns how many had it."""
    store.check_tag(tag)
    with db.connection(conn) as c:
        return store.remove(c, tag, None if refs is None else resolve(c, refs))
