"""Stored 2-D maps: the `projections` tables (points, trustworthiness scores, the fitted reducer)."""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

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
    """Every stored image's place on a map, in image id order: compact arrays, so a million points stay cheap.

    Categories are codes into `names` (-1: none); paths are not held here, they are read for what is shown.
    """

    ids: np.ndarray  # int64, ascending
    x: np.ndarray  # float32
    y: np.ndarray
    codes: np.ndarray  # int32 index into names, -1 for images without a category
    names: list[str]  # the categories, sorted

    def rows(self, image_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row of each image id (-1 for ids not on this map)."""
        wanted = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        if not len(self.ids):
            return np.full(len(wanted), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        return np.where(self.ids[rows] == wanted, rows, -1)

    def category(self, row: int) -> str | None:
        code = int(self.codes[row])
        return None if code < 0 else self.names[code]

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
    generation: int | None = None,
    *,
    coords: np.ndarray | None = None,
) -> int:
    """Replace the model's map in one transaction: a reader sees the old map or the new one, whole.

    generation: the collection generation read before the vectors (default: the current one).
    coords: each image's (x, y) when not the reducer's own embedding (a fit on a sample, the rest placed);
    reducer may then be None (nothing to store for `load_reducer`).
    """
    coords = np.asarray(reducer.embedding_ if coords is None else coords, dtype=np.float32)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM projections WHERE model_id = %s", (model.id,))
        projection_id = cur.execute(
            "INSERT INTO projections (model_id, n_neighbors, min_dist, metric, images, seconds, params, generation)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, (SELECT generation FROM collection_generation)))"
            " RETURNING id",
            (
                model.id,
                params["n_neighbors"],
                params["min_dist"],
                params["metric"],
                len(ids),
                seconds,
                psycopg.types.json.Jsonb(params),
                generation,
            ),
        ).fetchone()[0]
        with cur.copy("COPY projection_points (projection_id, image_id, x, y) FROM STDIN") as copy:
            for image_id, (x, y) in zip(ids.tolist(), coords.tolist(), strict=True):
                copy.write_row((projection_id, image_id, x, y))
        cur.executemany(
            "INSERT INTO projection_scores (projection_id, n_neighbors, trustworthiness) VALUES (%s, %s, %s)",
            [(projection_id, k, s) for k, s in scores.items()],
        )
        if reducer is not None:
            blob = pickle.dumps(reducer, protocol=pickle.HIGHEST_PROTOCOL)
            cur.execute(
                "INSERT INTO projection_reducers (projection_id, reducer) VALUES (%s, %s)", (projection_id, blob)
            )
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


def _copy_csv(conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any]) -> bytes:
    """A query's rows as CSV through COPY (NULL written as \\N): a million rows in about a second."""
    out = io.BytesIO()
    with conn.cursor() as cur:
        statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, NULL '\\N')").format(query)
        with cur.copy(statement, params) as copy:
            for block in copy:
                out.write(block)
    return out.getvalue()


def _frame(data: bytes, columns: dict[str, Any]) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data), names=list(columns), dtype=columns, keep_default_na=False, na_values=["\\N"], header=None
    )


def points(conn: psycopg.Connection, projection_id: int) -> MapPoints:
    """A map's points with their categories (codes), read with COPY rather than row by row."""
    query = sql.SQL(
        "SELECT p.image_id, p.x, p.y, i.category FROM projection_points p JOIN images i ON i.id = p.image_id"
        " WHERE p.projection_id = %s ORDER BY p.image_id"
    )
    frame = _frame(
        _copy_csv(conn, query, (projection_id,)), {"id": "int64", "x": "float32", "y": "float32", "c": "str"}
    )
    categories = pd.Categorical(frame["c"])
    return MapPoints(
        ids=frame["id"].to_numpy(),
        x=frame["x"].to_numpy(),
        y=frame["y"].to_numpy(),
        codes=np.asarray(categories.codes, dtype=np.int32),
        names=[str(c) for c in categories.categories],
    )


def _like(text: str) -> str:
    """A substring as an ILIKE pattern (its own % and _ taken literally)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def matching(conn: psycopg.Connection, projection_id: int, text: str) -> np.ndarray:
    """Ids (ascending) of the map's images whose category or any path contains `text`, ignoring case."""
    rows = conn.execute(
        "SELECT p.image_id FROM projection_points p JOIN images i ON i.id = p.image_id WHERE p.projection_id = %s"
        " AND (i.category ILIKE %s OR EXISTS (SELECT 1 FROM image_paths a WHERE a.image_id = i.id AND a.path ILIKE %s))"
        " ORDER BY p.image_id",
        (projection_id, _like(text), _like(text)),
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def top_folders(conn: psycopg.Connection, projection_id: int) -> tuple[np.ndarray, list[str]]:
    """Each image's first folder under the folder all the map's paths share ("." for files right in it).

    Returns (ids, folder) in image id order; the shared folder is found from the first and last path in
    sort order, which share the longest prefix any two paths share.
    """
    lo, hi = conn.execute(
        "SELECT min(i.path), max(i.path) FROM projection_points p JOIN images i ON i.id = p.image_id"
        " WHERE p.projection_id = %s",
        (projection_id,),
    ).fetchone()
    if lo is None:
        return np.zeros(0, np.int64), []
    root = lo[: len(os.path.commonprefix([lo, hi]))]
    root = root[: root.rfind("/") + 1]
    query = sql.SQL(
        "SELECT p.image_id, CASE WHEN strpos(substr(i.path, %s), '/') = 0 THEN '.'"
        " ELSE split_part(substr(i.path, %s), '/', 1) END"
        " FROM projection_points p JOIN images i ON i.id = p.image_id WHERE p.projection_id = %s ORDER BY p.image_id"
    )
    start = len(root) + 1
    frame = _frame(_copy_csv(conn, query, (start, start, projection_id)), {"id": "int64", "folder": "str"})
    return frame["id"].to_numpy(), frame["folder"].tolist()


def distances(
    conn: psycopg.Connection, projection_id: int, model: Model, vector: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, distance to `vector` under the model's metric) of every image on the map, in image id order.

    An exact scan (every image's distance is wanted, not the nearest few): about a second per million rows.
    """
    query = sql.SQL(
        "SELECT p.image_id, {column} {op} %s FROM projection_points p"
        " JOIN embeddings e ON e.image_id = p.image_id AND e.model_id = {model}"
        " WHERE p.projection_id = %s ORDER BY p.image_id"
    ).format(column=model.column(), op=model.operator, model=sql.Literal(model.id))
    frame = _frame(_copy_csv(conn, query, (model.param(vector), projection_id)), {"id": "int64", "d": "float32"})
    return frame["id"].to_numpy(), frame["d"].to_numpy()


def load_reducer(conn: psycopg.Connection, projection_id: int) -> Any:
    """The fitted UMAP of a stored map (unpickling imports umap: slow the first time in a process)."""
    row = conn.execute("SELECT reducer FROM projection_reducers WHERE projection_id = %s", (projection_id,)).fetchone()
    if row is None:
        raise ModelNotFound(f"map {projection_id} has no stored reducer; run cbir project again")
    return pickle.loads(row[0])
