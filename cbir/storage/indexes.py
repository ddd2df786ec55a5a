"""Rebuild a model's HNSW index as another type or with other parameters, while searches keep running.

Why: BENCHMARKS.md measured what a collection near a million images needs (a denser graph, m 32 /
ef_construction 128), what halves the index (`halfvec`), and binary quantization with re-ranking shrinks it
further. `cbir index` makes these one command instead of SQL to paste.

How, so that no search fails meanwhile: the new index is built with CREATE INDEX CONCURRENTLY under a second
name (writes and reads go on), then the choice is recorded in the model's row (`info.index`), from which moment
every query is written with the new index's expression (cbir.storage.models.Model), then the old index is
dropped concurrently (in-flight queries on it finish first) and the new one takes the usual name. A run that is
interrupted leaves at most a second index, which the next run completes or removes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cbir.errors import BadArgument, DatabaseUnavailable, first_line
from cbir.storage import db
from cbir.storage.models import (
    _INDEX_LOCK_KEY,
    BIT,
    BIT_RERANK,
    HALFVEC,
    INDEX_TYPES,
    IndexChoice,
    Model,
    list_models,
    update_model_info,
)

# pgvector's HNSW limits: dimensions per type, and the graph parameters it accepts.
_MAX_DIMS = {"vector": 2000, HALFVEC: 4000, BIT_RERANK: 64000, BIT: 64000}
M_RANGE, EF_CONSTRUCTION_RANGE = (2, 100), (4, 1000)


@dataclass(frozen=True)
class IndexFacts:
    """What `cbir db status` shows about a model's index."""

    model: str
    type: str
    m: int
    ef_construction: int
    bytes: int | None  # None: the model has no index right now
    building: bool  # a rebuild is in progress (or was interrupted)


def index_name(model: Model, building: bool = False) -> str:
    return f"embeddings_hnsw_model_{model.id}" + ("_build" if building else "")


def check_choice(model: Model, choice: IndexChoice) -> None:
    """One-line errors for a type or parameters this model's index cannot have."""
    if model.kind == "bit" and choice.type != BIT:
        raise BadArgument(
            f"{model.name} stores {model.dim}-bit hashes, indexed by Hamming distance: --type does not apply"
        )
    if model.kind != "bit" and choice.type not in INDEX_TYPES:
        raise BadArgument(f"--type must be one of {', '.join(INDEX_TYPES)}, not {choice.type!r}")
    if choice.type == BIT_RERANK and model.metric != "cosine":
        raise BadArgument(f"bit-rerank quantizes unit vectors compared by cosine; {model.name} uses {model.metric}")
    if model.dim > _MAX_DIMS[choice.type]:
        raise BadArgument(f"pgvector's HNSW takes at most {_MAX_DIMS[choice.type]} dimensions as {choice.type}")
    if not M_RANGE[0] <= choice.m <= M_RANGE[1]:
        raise BadArgument(f"--m must be between {M_RANGE[0]} and {M_RANGE[1]}, not {choice.m}")
    low, high = max(EF_CONSTRUCTION_RANGE[0], 2 * choice.m), EF_CONSTRUCTION_RANGE[1]
    if not low <= choice.ef_construction <= high:
        raise BadArgument(
            f"--ef-construction must be between {low} (twice --m) and {high}, not {choice.ef_construction}"
        )


def _definition(model: Model, name: str) -> sql.Composed:
    choice = model.index_choice
    return sql.SQL(
        "CREATE INDEX CONCURRENTLY {} ON embeddings USING hnsw (({}) {}) WITH (m = {}, ef_construction = {})"
        " WHERE model_id = {}"
    ).format(
        sql.Identifier(name),
        model.column(table=None),
        model.opclass,
        sql.Literal(choice.m),
        sql.Literal(choice.ef_construction),
        sql.Literal(model.id),
    )


def _index_state(conn: psycopg.Connection, name: str) -> bool | None:
    """None when there is no such index, else whether it is valid (a failed concurrent build leaves it invalid)."""
    row = conn.execute("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)", (name,)).fetchone()
    return None if row is None else bool(row[0])


def _finish_interrupted(conn: psycopg.Connection, model: Model) -> None:
    """Complete a swap that was interrupted after the choice was recorded, or drop a half-built index."""
    canonical, building = index_name(model), index_name(model, building=True)
    state = _index_state(conn, building)
    if state is None:
        return
    if state and _index_state(conn, canonical) is None:
        conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(canonical)))
    else:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(building)))


def _progress(conn: psycopg.Connection, name: str) -> tuple[int, int] | None:
    """(tuples done, tuples total) of a running build of that index, from pg_stat_progress_create_index."""
    return conn.execute(
        "SELECT tuples_done, tuples_total FROM pg_stat_progress_create_index WHERE index_relid = to_regclass(%s)",
        (name,),
    ).fetchone()


def rebuild(
    url: str,
    model: Model,
    choice: IndexChoice,
    on_progress: Callable[[int, int], None] | None = None,
    poll_seconds: float = 0.5,
) -> IndexFacts:
    """Build the model's index as `choice` beside the old one, then swap; searches work throughout."""
    check_choice(model, choice)
    target = dataclasses.replace(model, index=choice)
    building = index_name(model, building=True)
    with db.connect(url) as conn:
        _finish_interrupted(conn, model)
        failure: list[BaseException] = []
        worker = threading.Thread(target=_build, args=(url, target, building, failure), daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(poll_seconds)
            done = _progress(conn, building)
            if on_progress and done:
                on_progress(*done)
        if failure:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(building)))
            raise failure[0]
        _swap(conn, target)
        return next(f for f in statuses(conn) if f.model == model.name)


def _build(url: str, model: Model, name: str, failure: list[BaseException]) -> None:
    try:
        with db.connect(url) as conn:
            conn.execute(_definition(model, name))
    except psycopg.Error as exc:
        failure.append(DatabaseUnavailable(f"building the index of {model.name} failed: {first_line(exc)}"))
    except BaseException as exc:  # reported by the caller's thread
        failure.append(exc)


def _swap(conn: psycopg.Connection, model: Model) -> None:
    """Record the choice (queries switch to the new index's expression), drop the old index, rename the new one.

    Holds the lock that ensure_model takes, so a concurrent ingest never recreates the old index in between.
    """
    canonical, building = index_name(model), index_name(model, building=True)
    conn.execute("SELECT pg_advisory_lock(%s)", (_INDEX_LOCK_KEY,))
    try:
        update_model_info(conn, model, {"index": dataclasses.asdict(model.index_choice)})
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(canonical)))
        conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(canonical)))
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (_INDEX_LOCK_KEY,))


def statuses(conn: psycopg.Connection) -> list[IndexFacts]:
    """Every model's index: type and parameters (as recorded, else the defaults it was built with) and size."""
    facts = []
    for model in list_models(conn):
        choice = model.index_choice
        row = conn.execute(
            "SELECT pg_relation_size(to_regclass(%s)), to_regclass(%s) IS NOT NULL",
            (index_name(model), index_name(model, building=True)),
        ).fetchone()
        facts.append(IndexFacts(model.name, choice.type, choice.m, choice.ef_construction, row[0], bool(row[1])))
    return facts
