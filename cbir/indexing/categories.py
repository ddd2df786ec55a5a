"""The category rule: which category an image gets from the folders its files are in.

At ingest, a file's category is its folder's name (`--label folder`) or none (`--label none`).
For an image whose bytes are at paths in several folders: the folder most of its
paths are in; a tie goes to the alphabetically first folder name (code point order). Why not "the most
recently seen path wins": with this rule an image's category is a function of where its copies are now,
not of the order cbir happened to see them in, so an interrupted sync and its re-run, a relabel, and
another machine ingesting the same tree all agree, and running relabel twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from cbir.errors import BadArgument
from cbir.storage.path_changes import ImageState, ImageUpdate, Settle


def category_of(path: Path, label: str) -> str | None:
    """The category ingest gives a file: its folder's name (label "folder") or none (label "none")."""
    if label == "none":
        return None
    if label == "folder":
        return path.parent.name or None
    raise BadArgument(f"--label must be 'folder' or 'none', got {label!r}")


def folder_of(path: str) -> str | None:
    """The folder name a path gives as category (as ingest's --label folder does)."""
    return PurePosixPath(path).parent.name or None


def category_for(paths: Iterable[str]) -> str | None:
    """The folder most of the paths are in; ties to the alphabetically first; None when none is in a folder."""
    votes = Counter(f for f in map(folder_of, paths) if f)
    return min(votes, key=lambda f: (-votes[f], f)) if votes else None


def first_path(state: ImageState, category: str | None) -> str:
    """The path `images.path` should hold: the current one while it exists and fits the category, else the
    first path in the category's folder, else the first path (paths sorted)."""
    paths = sorted(state.paths)
    in_folder = [p for p in paths if folder_of(p) == category]
    if state.path in state.paths and (not in_folder or folder_of(state.path) == category):
        return state.path
    return (in_folder or paths)[0]


def settler(relabel: bool) -> Settle:
    """The rule as path_changes applies it: category from folders (relabel) or kept, and a current first path."""

    def settle(states: list[ImageState]) -> list[ImageUpdate]:
        updates = []
        for s in states:
            category = category_for(s.paths) if relabel else s.category
            updates.append(ImageUpdate(s.id, category, first_path(s, category)))
        return updates

    return settle
