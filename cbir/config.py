"""Every `CBIR_*` setting, read and validated in one place, so the CLI, the dashboard and the API agree.

`settings()` reads the environment when called (not at import), so tests and the CLI can change it first.
A bad value is a `ConfigError` whose one line names the variable and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cbir.errors import ConfigError

DEFAULT_MODEL = "facebook/dinov2-small"
# hnsw.ef_search for queries, chosen from benchmarks/search_bench.py's recall/latency curve (BENCHMARKS.md):
# the smallest value with recall@10 >= 0.98 at 100k rows, still ~17x faster than an exact scan there.
DEFAULT_EF_SEARCH = 200
# bit-rerank indexes (cbir index): Hamming candidates per result, re-ranked exactly (tests/test_index_types.py).
DEFAULT_RERANK = 10
PRECISIONS = ("float32", "bfloat16", "int8")
DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "torch", "openvino")  # cbir.embedders.runtime: who runs the forward pass
MiB = 1024 * 1024
# UMAP is fitted on at most this many images (cbir project); benchmarks/map_placement.py measures the cost.
DEFAULT_MAP_SAMPLE = 50_000

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """One snapshot of the configuration (README, "Configuration", lists each variable)."""

    home: Path
    database_url: str | None
    model: str
    model_from_env: bool  # CBIR_MODEL was set: it wins over "the only stored model" when none is named
    ef_search: int
    rerank: int  # bit-rerank searches re-rank this many Hamming candidates per result
    reader_url: str | None  # how the SQL console logs in as cbir_reader (default: derived)
    precision: str
    device: str
    runtime: str
    cache: Path  # converted models (CBIR_CACHE; default $CBIR_HOME/cache): safe to share between homes
    max_pixels: int
    max_bytes: int
    max_upload_bytes: int
    max_aspect: float
    map_sample: int  # maps of more images fit UMAP on this many and place the rest by their neighbours
    session_minutes: float  # a dashboard login lasts this long
    store_gps: bool  # CBIR_STORE_GPS=0: ingest stores no camera position (image_metadata.gps_*)

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"


def _read(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], accepts: str) -> T:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None:
        raise ConfigError(f"{name} must be {accepts}, got {raw!r}")
    return value


def _positive_int(raw: str) -> int | None:
    value = int(raw.replace("_", ""))
    return value if value >= 1 else None


def _positive_float(raw: str) -> float | None:
    value = float(raw)
    return value if value > 0 and value != float("inf") else None


def _switch(raw: str) -> bool | None:
    return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(raw.lower())


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda raw: raw if raw in choices else None


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings in force now (from `env`, default the process environment)."""
    env = os.environ if env is None else env
    number = "a positive whole number"
    home = Path(env.get("CBIR_HOME") or "~/.local/share/cbir").expanduser()
    return Settings(
        home=home,
        database_url=env.get("CBIR_DATABASE_URL") or None,
        model=env.get("CBIR_MODEL") or DEFAULT_MODEL,
        model_from_env=bool(env.get("CBIR_MODEL")),
        ef_search=_read(env, "CBIR_EF_SEARCH", DEFAULT_EF_SEARCH, _positive_int, number),
        rerank=_read(env, "CBIR_RERANK", DEFAULT_RERANK, _positive_int, number),
        reader_url=env.get("CBIR_READER_URL") or None,
        precision=_read(env, "CBIR_PRECISION", "float32", _one_of(PRECISIONS), "one of " + ", ".join(PRECISIONS)),
        device=_read(env, "CBIR_DEVICE", "auto", _one_of(DEVICES), "one of " + ", ".join(DEVICES)),
        runtime=_read(env, "CBIR_RUNTIME", "auto", _one_of(RUNTIMES), "one of " + ", ".join(RUNTIMES)),
        cache=Path(env.get("CBIR_CACHE") or home / "cache").expanduser(),
        max_pixels=_read(env, "CBIR_MAX_PIXELS", 100_000_000, _positive_int, number),
        max_bytes=_read(env, "CBIR_MAX_BYTES", 200 * MiB, _positive_int, f"{number} of bytes"),
        max_upload_bytes=_read(env, "CBIR_MAX_UPLOAD_BYTES", 50 * MiB, _positive_int, f"{number} of bytes"),
        max_aspect=_read(env, "CBIR_MAX_ASPECT", 100.0, _positive_float, "a positive number"),
        map_sample=_read(env, "CBIR_MAP_SAMPLE", DEFAULT_MAP_SAMPLE, _positive_int, number),
        session_minutes=_read(env, "CBIR_SESSION_MINUTES", 480.0, _positive_float, "a positive number of minutes"),
        store_gps=_read(env, "CBIR_STORE_GPS", True, _switch, "1 or 0 (true/false, yes/no)"),
    )
