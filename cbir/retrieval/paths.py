"""Which server paths the dashboard may read as a query: files under the folders given to `cbir ingest`.

The Search page's "path" mode reads a file on the server; without this check anyone logged in could read any
file the dashboard's process can (as an image, or as a one-line error that tells whether it exists). The path
is resolved first (symlinks followed), so a link inside a root that points out of it is refused too; `..` is
refused outright, and so are relative paths (relative to what, on the server?). The resolved path is what the
caller reads, so what was checked is what is opened (short of a folder inside a root being swapped for a link
between the two, which needs write access to that root).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import psycopg

from cbir.errors import PathRefused
from cbir.storage import roots


def allowed_path(conn: psycopg.Connection, path: str) -> Path:
    """The resolved path when it lies under an ingested root; else PathRefused (one line)."""
    if "\x00" in path:
        raise PathRefused("refused: the path contains a NUL character")
    if not PurePosixPath(path).is_absolute():
        raise PathRefused(
            f"refused: {path} is not an absolute path; give the full path of a file in an ingested folder"
        )
    if ".." in PurePosixPath(path).parts:
        raise PathRefused(f"refused: {path} has '..' segments; give the path without them")
    real = os.path.realpath(path)
    text = roots.resolved_text(real)
    if not any(_under(text, root.resolved) for root in roots.roots(conn)):
        raise PathRefused(f"refused: {path} is outside the folders given to cbir ingest")
    return Path(real)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
