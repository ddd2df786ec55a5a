"""Every error a user can cause, under one base, so callers catch `CbirError` and tests match types, not text.

The CLI prints any `CbirError` as one line (exit code 2); dashboard pages show it as one line.
"""

from __future__ import annotations


class CbirError(Exception):
    """An error the user can act on; its message is one line and says what to do."""


class ConfigError(CbirError):
    """A `CBIR_*` setting has a value cbir cannot use (the message names the variable)."""


class BadArgument(CbirError):
    """A command option or API argument is out of range or malformed."""


class BadImage(CbirError):
    """A file is not an image cbir can use; the message is the one-line reason (ingest skips such files)."""


class BadQuery(CbirError):
    """A query (an image file, upload or id) cannot be searched with."""


class ModelNotFound(CbirError):
    """A model cannot be loaded, or has no embeddings in the database."""


class NoSpatialFeatures(BadArgument):
    """The model's vector is not pooled from image positions (phash, pixels-umap), so a match cannot be mapped."""


class ModelMismatch(CbirError):
    """A model name is stored with another kind or size of vectors than the model now produces."""


class NotEnoughImages(CbirError):
    """The operation (a map, an evaluation, a fit) needs more images than are stored."""


class DatabaseUnavailable(CbirError):
    """The database cannot be started, reached or migrated."""


class QueryRefused(CbirError):
    """The SQL console refused or could not run an analyst's statement."""


class LoginRefused(CbirError):
    """A dashboard login was refused: unknown name or wrong password (never said which), or too many attempts."""


class PathRefused(BadQuery):
    """A query path lies outside the folders given to `cbir ingest` (the dashboard reads no other server file)."""


class FolderUnavailable(CbirError):
    """A folder to sync is missing, empty or unreadable, so it cannot be told apart from an unmounted disk."""


class ClusterError(CbirError):
    """A Ray cluster is missing (the optional dependency), cannot be reached, or failed a distributed ingest."""


def first_line(exc: BaseException) -> str:
    """An error's first line (its type where it has no text), for one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
