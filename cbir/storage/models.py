"""The `models` table: one row per model, and the SQL pieces that address its vectors through its HNSW index.

Each model has a partial expression index on embeddings (`WHERE model_id = <id>`); a query reaches it only
when it repeats the exact typed expression and the operator of its metric, which `Model` spells once.
`cbir index` (cbir/storage/indexes.py) can rebuild it as another type, recorded in the row's info: `vector`
(the default), `halfvec` (16-bit floats, half the size) or `bit-rerank` (binary quantization: Hamming-distance
candidates, CBIR_RERANK x k of them, re-ranked by the exact distance of the full vectors).
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

INDEX_LOCK_KEY = 0x63626973  # serialises per-model index creation across processes
# pgvector's distance operator and HNSW operator class for each metric (cbir.distances names them).
_OPERATORS = {COSINE: ("<=>", "vector_cosine_ops"), L2: ("<->", "vector_l2_ops"), HAMMING: ("<~>", "bit_hamming_ops")}


VECTOR, HALFVEC, BIT_RERANK, BIT = "vector", "halfvec", "bit-rerank", "bit"
INDEX_TYPES = (VECTOR, HALFVEC, BIT_RERANK)  # for vector models; hash models have their own bit index
_HALF_OPCLASSES = {COSINE: "halfvec_cosine_ops", L2: "halfvec_l2_ops"}


@dataclass(frozen=True)
class IndexChoice:
    """How a model's HNSW index is built (pgvector's defaults: m 16, ef_construction 64)."""

    type: str
    m: int = 16
    ef_construction: int = 64


@dataclass(frozen=True)
class Model:
    """A row of `models`, with the pieces of SQL that address its vectors through its index."""

    id: int
    name: str
    kind: str  # 'vector' or 'bit'
    dim: int
    metric: str = COSINE  # cbir.distances: cosine, l2 or hamming
    index: IndexChoice | None = None  # None: the index ensure_model built (vector or bit, default parameters)

    @property
    def index_choice(self) -> IndexChoice:
        return self.index or IndexChoice(BIT if self.kind == "bit" else VECTOR)

    @property
    def column_name(self) -> str:
        return "bits" if self.kind == "bit" else "embedding"

    def _col(self, table: str | None) -> sql.Composable:
        col: sql.Composable = sql.Identifier(self.column_name)
        return sql.SQL("{}.{}").format(sql.Identifier(table), col) if table else col

    def stored(self, table: str | None = "e") -> sql.Composable:
        """The stored vector (or bits) with its type and size, e.g. e.embedding::vector(384)."""
        type_name = "bit" if self.kind == "bit" else "vector"
        return sql.SQL("{}::{}({})").format(self._col(table), sql.SQL(type_name), sql.Literal(self.dim))

    def column(self, table: str | None = "e") -> sql.Composable:
        """The typed expression the model's HNSW index is built on; queries must use it verbatim."""
        kind, dim = self.index_choice.type, sql.Literal(self.dim)
        if kind == HALFVEC:
            return sql.SQL("{}::halfvec({})").format(self._col(table), dim)
        if kind == BIT_RERANK:
            return sql.SQL("binary_quantize({})::bit({})").format(self.stored(table), dim)
        return self.stored(table)

    def query_value(self, placeholder: sql.Composable) -> sql.Composable:
        """A query parameter (vectors arrive as `vector`) as the index's type: halfvec, or binary-quantized bits."""
        kind, dim = self.index_choice.type, sql.Literal(self.dim)
        if kind == HALFVEC:
            return sql.SQL("{}::halfvec({})").format(placeholder, dim)
        if kind == BIT_RERANK:
            return sql.SQL("binary_quantize({}::vector({}))::bit({})").format(placeholder, dim, dim)
        return placeholder

    @property
    def operator(self) -> sql.Composable:
        """The operator the index orders by: the metric's (cosine <=>, Euclidean <->), Hamming <~> for bits."""
        return sql.SQL("<~>" if self.index_choice.type == BIT_RERANK else _OPERATORS[self.metric][0])

    @property
    def exact_operator(self) -> sql.Composable:
        """The distance operator of the model's metric, what results are ranked by (also after re-ranking)."""
        return sql.SQL(_OPERATORS[self.metric][0])

    @property
    def opclass(self) -> sql.Composable:
        """The HNSW operator class that matches `operator`."""
        kind = self.index_choice.type
        if kind == HALFVEC:
            return sql.SQL(_HALF_OPCLASSES[self.metric])
        return sql.SQL("bit_hamming_ops" if kind == BIT_RERANK else _OPERATORS[self.metric][1])

    @property
    def reranks(self) -> bool:
        """Whether searches re-rank Hamming candidates by the exact distance (bit-rerank)."""
        return self.index_choice.type == BIT_RERANK

    def hits(self, source: sql.Composable, query: sql.Composable | None = None) -> sql.Composable:
        """SELECT image_id, distance, nearest first, LIMIT %(k)s, over `source` (FROM embeddings e ... WHERE ...).

        Through the index; for bit-rerank, %(candidates)s rows nearest by Hamming distance through the index,
        then re-ranked by the exact distance to the query. query: the query vector's SQL (default the
        parameter %(vector)s; a stored vector such as q.embedding::vector(384) for a lateral join).
        """
        query = sql.Placeholder("vector") if query is None else query
        ordered = sql.SQL("{} {} {}").format(self.column(), self.operator, self.query_value(query))
        if not self.reranks:
            return sql.SQL("SELECT e.image_id, {} AS distance {} ORDER BY distance LIMIT %(k)s").format(ordered, source)
        return sql.SQL(
            "SELECT c.image_id, c.embedding::vector({dim}) {op} {query} AS distance FROM ("
            "SELECT e.image_id, e.embedding {source} ORDER BY {ordered} LIMIT %(candidates)s) c"
            " ORDER BY distance LIMIT %(k)s"
        ).format(dim=sql.Literal(self.dim), op=self.exact_operator, query=query, source=source, ordered=ordered)

    def param(self, vector: np.ndarray) -> Any:
        return Bit(np.asarray(vector, dtype=bool)) if self.kind == "bit" else np.asarray(vector, dtype=np.float32)


_COLUMNS = "id, name, kind, dim, info->>'metric', info->'index'"


def _from_row(row: Sequence[Any]) -> Model:
    index = IndexChoice(**row[5]) if row[5] else None
    return Model(id=row[0], name=row[1], kind=row[2], dim=row[3], metric=metric_for(row[2], row[4]), index=index)


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
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK_KEY,))
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
