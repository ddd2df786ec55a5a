"""cbir: reverse image search for analysts, on Postgres + pgvector.

The public API (names load on first use, so `import cbir` stays fast)::

    import cbir

    cbir.ingest(["photos/"], model="efficientnet-lite0")      # walk, embed, store
    cbir.sync(["photos/"])                                     # follow deletions, moves, new files
    hits = cbir.search("query.jpg", k=5)                       # nearest stored images
    [report] = cbir.evaluate(["efficientnet-lite0"])           # leave-one-out P@k / mAP, stored
    with cbir.connect() as conn:
        cbir.project(conn, "efficientnet-lite0")               # the 2-D map for the dashboard

Every error a user can cause is a `cbir.CbirError` (subclasses in `cbir.errors`).
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "ingest": "cbir.indexing.ingest",
    "sync": "cbir.indexing.sync",
    "remove": "cbir.indexing.remove",
    "relabel": "cbir.indexing.remove",
    "search": "cbir.retrieval.search",
    "lookup": "cbir.retrieval.search",
    "evaluate": "cbir.analysis.evaluate",
    "project": "cbir.analysis.projection",
    "connect": "cbir.storage.db",
    "settings": "cbir.config",
    "Settings": "cbir.config",
    "get_embedder": "cbir.embedders",
    "CbirError": "cbir.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'cbir' has no attribute {name!r}")
    return getattr(import_module(_API[name]), name)
