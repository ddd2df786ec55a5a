"""Settings read from the environment, in one place so every entry point agrees."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "facebook/dinov2-small"
# hnsw.ef_search for queries, chosen from benchmarks/search_bench.py's recall/latency curve (BENCHMARKS.md):
# the smallest value with recall@10 >= 0.98 at 100k rows, still ~17x faster than an exact scan there.
DEFAULT_EF_SEARCH = 200


class CbirError(Exception):
    """An error the user can act on; the CLI prints it as one line, without a traceback."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    model: str
    ef_search: int
    reader_url: str | None = None  # how the SQL console logs in as cbir_reader (default: derived)

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"


def settings() -> Settings:
    """Read settings now (not at import) so tests and the CLI can change the environment first."""
    home = Path(os.environ.get("CBIR_HOME", "~/.local/share/cbir")).expanduser()
    ef = os.environ.get("CBIR_EF_SEARCH", str(DEFAULT_EF_SEARCH))
    if not ef.isdigit() or int(ef) < 1:
        raise CbirError(f"CBIR_EF_SEARCH must be a positive integer, got {ef!r}")
    return Settings(
        home=home,
        database_url=os.environ.get("CBIR_DATABASE_URL") or None,
        model=os.environ.get("CBIR_MODEL") or DEFAULT_MODEL,
        ef_search=int(ef),
        reader_url=os.environ.get("CBIR_READER_URL") or None,
    )
