"""Stored `cbir suspects` runs (migration 110): writing a run, and what the CLI, the Inspector and the Map read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from cbir.storage.models import Model

ORDERS = {
    "score": sql.SQL("s.score DESC, s.support DESC, s.image_id"),
    "uniqueness": sql.SQL("s.uniqueness DESC, s.image_id"),
    "representativeness": sql.SQL("s.representativeness DESC NULLS LAST, s.image_id"),
}


@dataclass(frozen=True)
class SuspectRun:
    id: int
    model: str
    k: int
    images: int
    method: str
    seconds: float
    generation: int
    created_at: datetime

    @property
    def label(self) -> str:
        return f"{self.model} (run {self.id}, {self.images} images, k={self.k}, {self.created_at:%Y-%m-%d %H:%M})"


@dataclass
class Scored:
    """One image of a run: its scores and the neighbours that voted (ids and distances, nearest first)."""

    id: int
    path: str
    category: str | None
    suggested: str | None
    score: float
    support: float
    uniqueness: float
    representativeness: float | None
    neighbours: list[int]
    distances: list[float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_run(
    conn: psycopg.Connection,
    model: Model,
    k: int,
    method: str,
    seconds: float,
    generation: int,
    rows: Iterable[tuple[Any, ...]],
) -> int:
    """Write a run and its per-image rows in one transaction; returns the run id.

    rows: (image id, category, suggested, score, support, uniqueness, representativeness, neighbour ids,
    distances), one per image scored.
    """
    rows = list(rows)
    with conn.transaction(), conn.cursor() as cur:
        run_id = cur.execute(
            "INSERT INTO suspect_runs (model_id, k, images, method, seconds, generation)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (model.id, k, len(rows), method, seconds, generation),
        ).fetchone()[0]
        columns = "run_id, image_id, category, suggested, score, support, uniqueness, representativeness"
        with cur.copy(f"COPY suspect_scores ({columns}, neighbours, distances) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((run_id, *row))
    return run_id


_RUN = "SELECT r.id, m.name, r.k, r.images, r.method, r.seconds, r.generation, r.created_at FROM suspect_runs r"


def latest_run(conn: psycopg.Connection, model: Model) -> SuspectRun | None:
    """The model's newest stored run, if any."""
    row = conn.execute(
        f"{_RUN} JOIN models m ON m.id = r.model_id WHERE r.model_id = %s ORDER BY r.created_at DESC, r.id DESC"
        " LIMIT 1",
        (model.id,),
    ).fetchone()
    return SuspectRun(*row) if row else None


def latest_runs(conn: psycopg.Connection) -> list[SuspectRun]:
    """The newest run of each model, newest first (the Inspector's and the Map's choice)."""
    rows = conn.execute(
        "SELECT * FROM (SELECT DISTINCT ON (r.model_id) r.id, m.name, r.k, r.images, r.method, r.seconds,"
        " r.generation, r.created_at FROM suspect_runs r JOIN models m ON m.id = r.model_id"
        " ORDER BY r.model_id, r.created_at DESC, r.id DESC) t ORDER BY created_at DESC"
    ).fetchall()
    return [SuspectRun(*r) for r in rows]


def ranked(
    conn: psycopg.Connection, run_id: int, limit: int = 50, order: str = "score", category: str | None = None
) -> list[Scored]:
    """A run's images in `order` (ORDERS: most suspect first by default), optionally of one category."""
    query = sql.SQL(
        "SELECT s.image_id, i.path, s.category, s.suggested, s.score, s.support, s.uniqueness,"
        " s.representativeness, s.neighbours, s.distances FROM suspect_scores s JOIN images i ON i.id = s.image_id"
        " WHERE s.run_id = %s AND (%s::text IS NULL OR s.category = %s) ORDER BY {order} LIMIT %s"
    ).format(order=ORDERS[order])
    rows = conn.execute(query, (run_id, category, category, limit)).fetchall()
    return [Scored(*r[:8], list(r[8]), [float(d) for d in r[9]]) for r in rows]


def scores_by_image(conn: psycopg.Connection, run_id: int, column: str = "score") -> dict[int, float]:
    """image id -> one of a run's per-image columns (score, uniqueness or representativeness), for the Map."""
    if column not in ("score", "uniqueness", "representativeness"):
        raise ValueError(f"not a suspect_scores column: {column}")
    query = sql.SQL("SELECT image_id, {} FROM suspect_scores WHERE run_id = %s").format(sql.Identifier(column))
    rows = conn.execute(query, (run_id,))
    return {r[0]: r[1] for r in rows if r[1] is not None}


def places(conn: psycopg.Connection, image_ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    """image id -> (path, current category), for the neighbours a page or the CLI shows as evidence."""
    rows = conn.execute("SELECT id, path, category FROM images WHERE id = ANY(%s)", (list(image_ids),))
    return {r[0]: (r[1], r[2]) for r in rows}


def run_categories(conn: psycopg.Connection, run_id: int) -> list[str]:
    """The categories a run scored, sorted (the Suspects view's folder filter)."""
    rows = conn.execute(
        "SELECT DISTINCT category FROM suspect_scores WHERE run_id = %s AND category IS NOT NULL ORDER BY 1", (run_id,)
    )
    return [r[0] for r in rows]
