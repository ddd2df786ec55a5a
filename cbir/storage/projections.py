"""Stored 2-D maps: the `projections` tables (points, trustworthiness scores, the fitted reducer)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import psycopg

from cbir.errors import ModelNotFound
from cbir.storage.models import Model


@dataclass
class Projection:
    id: int
    model: str
    n_neighbors: int
    min_dist: float
    metric: str
    images: int
    seconds: float
    params: dict[str, Any]
    created_at: datetime
    scores: dict[int, float] = field(default_factory=dict)  # n_neighbors -> trustworthiness


@dataclass
class MapPoints:
    """Every stored image's place on a map, with what the hover text and the selection need."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    categories: list[str | None]
    paths: list[str]

    @cached_property
    def position(self) -> dict[int, int]:
        """Row of each image id."""
        return {int(i): n for n, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def save(
    conn: psycopg.Connection,
    model: Model,
    ids: np.ndarray,
    reducer: Any,
    params: dict[str, Any],
    seconds: float,
    scores: dict[int, float],
) -> int:
    """Replace the model's map in one transaction: a reader sees the old map or the new one, whole."""
    coords = np.asarray(reducer.embedding_, dtype=np.float32)
    blob = pickle.dumps(reducer, protocol=pickle.HIGHEST_PROTOCOL)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM projections WHERE model_id = %s", (model.id,))
        projection_id = cur.execute(
            "INSERT INTO projections (model_id, n_neighbors, min_dist, metric, images, seconds, params)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                model.id,
                params["n_neighbors"],
                params["min_dist"],
                params["metric"],
                len(ids),
                seconds,
                psycopg.types.json.Jsonb(params),
            ),
        ).fetchone()[0]
        with cur.copy("COPY projection_points (projection_id, image_id, x, y) FROM STDIN") as copy:
            for image_id, (x, y) in zip(ids.tolist(), coords.tolist(), strict=True):
                copy.write_row((projection_id, image_id, x, y))
        cur.executemany(
            "INSERT INTO projection_scores (projection_id, n_neighbors, trustworthiness) VALUES (%s, %s, %s)",
            [(projection_id, k, s) for k, s in scores.items()],
        )
        cur.execute("INSERT INTO projection_reducers (projection_id, reducer) VALUES (%s, %s)", (projection_id, blob))
    return projection_id


def latest(conn: psycopg.Connection, model: str) -> Projection | None:
    """The stored map of a model (by stored name), with its trustworthiness scores; None before `cbir project`."""
    row = conn.execute(
        "SELECT p.id, m.name, p.n_neighbors, p.min_dist, p.metric, p.images, p.seconds, p.params, p.created_at"
        " FROM projections p JOIN models m ON m.id = p.model_id WHERE m.name = %s",
        (model,),
    ).fetchone()
    if row is None:
        return None
    projection = Projection(*row)
    rows = conn.execute(
        "SELECT n_neighbors, trustworthiness FROM projection_scores WHERE projection_id = %s ORDER BY n_neighbors",
        (projection.id,),
    )
    projection.scores = {k: s for k, s in rows}
    return projection


def points(conn: psycopg.Connection, projection_id: int) -> MapPoints:
    rows = conn.execute(
        "SELECT p.image_id, p.x, p.y, i.category, i.path FROM projection_points p JOIN images i ON i.id = p.image_id"
        " WHERE p.projection_id = %s ORDER BY p.image_id",
        (projection_id,),
    ).fetchall()
    return MapPoints(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        x=np.array([r[1] for r in rows], dtype=np.float32),
        y=np.array([r[2] for r in rows], dtype=np.float32),
        categories=[r[3] for r in rows],
        paths=[r[4] for r in rows],
    )


def load_reducer(conn: psycopg.Connection, projection_id: int) -> Any:
    """The fitted UMAP of a stored map (unpickling imports umap: slow the first time in a process)."""
    row = conn.execute("SELECT reducer FROM projection_reducers WHERE projection_id = %s", (projection_id,)).fetchone()
    if row is None:
        raise ModelNotFound(f"map {projection_id} has no stored reducer; run cbir project again")
    return pickle.loads(row[0])
