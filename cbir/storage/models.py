"""The `models` table: one row per model, and the SQL pieces that address its vectors through its HNSW index.

Each model has a partial expression index on embeddings (`WHERE model_id = <id>`); a query reaches it only
when it repeats the exact typed expression and the operator of its metric, which `Model` spells once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector import Bit
from psycopg import sql

from cbir.config import settings
from cbir.distances import COSINE, HAMMING, L2, metric_for
from cbir.embedders import canonical_name
from cbir.errors import ModelMismatch, ModelNotFound

_INDEX_LOCK_KEY = 0x63626973  # serialises per-model index creation across processes
# pgvector's distance operator and HNSW operator class for each metric (cbir.distances names them).
_OPERATORS = {COSINE: ("<=>", "vector_cosine_ops"), L2: ("<->", "vector_l2_ops"), HAMMING: ("<~>", "bit_hamming_ops")}


@dataclass(frozen=True)
class Model:
    """A row of `models`, with the pieces of SQL that address its vectors through its index."""

    id: int
    name: str
    kind: str  # 'vector' or 'bit'
    dim: int
    metric: str = COSINE  # cbir.distances: cosine, l2 or hamming

    @property
    def column_name(self) -> str:
        return "bits" if self.kind == "bit" else "embedding"

    def column(self, table: str | None = "e") -> sql.Composable:
        """The typed expression the model's HNSW index is built on; queries must use it verbatim."""
        col: sql.Composable = sql.Identifier(self.column_name)
        if table:
            col = sql.SQL("{}.{}").format(sql.Identifier(table), col)
        type_name = "bit" if self.kind == "bit" else "vector"
        return sql.SQL("{}::{}({})").format(col, sql.SQL(type_name), sql.Literal(self.dim))

    @property
    def operator(self) -> sql.Composable:
        """The distance operator of the model's metric (cosine <=>, Euclidean <->, Hamming <~>)."""
        return sql.SQL(_OPERATORS[self.metric][0])

    @property
    def opclass(self) -> sql.Composable:
        """The HNSW operator class that matches `operator`."""
        return sql.SQL(_OPERATORS[self.metric][1])

    def param(self, vector: np.ndarray) -> Any:
        return Bit(np.asarray(vector, dtype=bool)) if self.kind == "bit" else np.asarray(vector, dtype=np.float32)


_COLUMNS = "id, name, kind, dim, info->>'metric'"


def _from_row(row: Sequence[Any]) -> Model:
    return Model(id=row[0], name=row[1], kind=row[2], dim=row[3], metric=metric_for(row[2], row[4]))


def get_model(conn: psycopg.Connection, name: str) -> Model | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE name = %s", (name,)).fetchone()
    return _from_row(row) if row else None


def list_models(conn: psycopg.Connection) -> list[Model]:
    """Models registered in the database, oldest first."""
    return [_from_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM models ORDER BY id").fetchall()]


def resolve_model(conn: psycopg.Connection, name: str | None) -> Model:
    """The stored model to use: the one named, else CBIR_MODEL, else the only one stored, else the default."""
    stored = list_models(conn)
    s = settings()
    if name is None and not s.model_from_env and len(stored) == 1:
        return stored[0]
    name = name or s.model
    model = get_model(conn, canonical_name(name))
    if model is None:
        have = ", ".join(m.name for m in stored) or "none yet"
        raise ModelNotFound(f"no embeddings for model {name!r} (models in the database: {have}); run cbir ingest first")
    return model


def ensure_model(conn: psycopg.Connection, name: str, kind: str, dim: int, metric: str, info: dict[str, Any]) -> Model:
    """Register a model and its HNSW index (idempotent, safe from concurrent processes)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INDEX_LOCK_KEY,))
        conn.execute(
            "INSERT INTO models (name, kind, dim, info) VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (name, kind, dim, json.dumps(info | {"metric": metric})),
        )
        model = get_model(conn, name)
        assert model is not None
        if (model.kind, model.dim) != (kind, dim):
            raise ModelMismatch(
                f"model {name!r} is stored as {model.kind}({model.dim}) but now produces {kind}({dim}); "
                "use a different model name"
            )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON embeddings USING hnsw (({}) {}) WHERE model_id = {}").format(
                sql.Identifier(f"embeddings_hnsw_model_{model.id}"),
                model.column(table=None),
                model.opclass,
                sql.Literal(model.id),
            )
        )
    return model


def update_model_info(conn: psycopg.Connection, model: Model, info: dict[str, Any]) -> None:
    """Merge facts learned after registration (e.g. when and on how many images a model was fitted)."""
    conn.execute("UPDATE models SET info = info || %s::jsonb WHERE id = %s", (json.dumps(info), model.id))
