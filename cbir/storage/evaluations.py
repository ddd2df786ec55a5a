"""Stored `cbir eval` results: writing a run, and what the Inspector page reads (never recomputed): runs,
per-category metrics worst first, confused category pairs, the confusion matrix of the most confused
categories, and A's queries with their wrong B neighbours."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from cbir.storage.models import Model

CATEGORY_COLUMNS = ("precision_at_1", "precision_at_5", "precision_at_10", "map_at_k", "map")


@dataclass(frozen=True)
class Run:
    id: int
    model: str
    k: int
    queries: int
    images: int
    created_at: datetime
    overall: dict[str, float]
    macro: dict[str, float]

    @property
    def label(self) -> str:
        return f"{self.model} (run {self.id}, {self.queries} queries, {self.created_at:%Y-%m-%d %H:%M})"


@dataclass
class Example:
    """One query of category A and those of its top-k neighbours that are in category B."""

    query_id: int
    query_path: str
    wrong: list[tuple[int, int, float]]  # (image id, rank, distance)


def latest_runs(conn: psycopg.Connection) -> list[Run]:
    """The newest evaluation run of each model, newest first."""
    rows = conn.execute(
        "SELECT DISTINCT ON (r.model_id) r.id, m.name, r.k, r.queries, r.images, r.created_at, r.overall, r.macro"
        " FROM evaluation_runs r JOIN models m ON m.id = r.model_id ORDER BY r.model_id, r.created_at DESC, r.id DESC"
    ).fetchall()
    return sorted((Run(*r) for r in rows), key=lambda run: run.created_at, reverse=True)


def categories(conn: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    """Per-category metrics of a run, worst (lowest full-ranking mAP) first."""
    rows = conn.execute(
        f"SELECT category, images, queries, {', '.join(CATEGORY_COLUMNS)} FROM evaluation_categories"
        " WHERE run_id = %s ORDER BY map, category",
        (run_id,),
    )
    names = ("category", "images", "queries", *CATEGORY_COLUMNS)
    return [dict(zip(names, r, strict=True)) for r in rows]


def confusions(
    conn: psycopg.Connection, run_id: int, category: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Confused pairs of a run, most wrong neighbours first (optionally only those of queries in `category`)."""
    rows = conn.execute(
        "SELECT category, other, neighbours, queries, rate, lift FROM evaluation_confusions"
        " WHERE run_id = %s AND (%s::text IS NULL OR category = %s)"
        " ORDER BY neighbours DESC, rate DESC, category, other LIMIT %s",
        (run_id, category, category, limit),
    )
    names = ("category", "other", "neighbours", "queries", "rate", "lift")
    return [dict(zip(names, r, strict=True)) for r in rows]


def pair(conn: psycopg.Connection, run_id: int, category: str, other: str) -> dict[str, Any] | None:
    """One pair's counts in a run (None when A's queries never had a B neighbour there)."""
    rows = confusions(conn, run_id, category=category, limit=10_000)
    return next((p for p in rows if p["other"] == other), None)


def examples(conn: psycopg.Connection, run_id: int, category: str, other: str, limit: int = 8) -> list[Example]:
    """A's queries with the most neighbours in B, each with those wrong neighbours and their distances."""
    rows = conn.execute(
        "SELECT n.query_id, q.path, array_agg(n.image_id ORDER BY n.rank), array_agg(n.rank ORDER BY n.rank),"
        " array_agg(n.distance ORDER BY n.rank)"
        " FROM evaluation_neighbours n JOIN images q ON q.id = n.query_id JOIN images i ON i.id = n.image_id"
        " WHERE n.run_id = %s AND q.category = %s AND i.category = %s"
        " GROUP BY n.query_id, q.path ORDER BY count(*) DESC, min(n.rank), n.query_id LIMIT %s",
        (run_id, category, other, limit),
    )
    return [Example(r[0], r[1], list(zip(r[2], r[3], r[4], strict=True))) for r in rows]


def compare(conn: psycopg.Connection, run_a: int, run_b: int) -> list[dict[str, Any]]:
    """Per-category mAP and precision@1 of two runs side by side, largest mAP difference (b - a) first."""
    rows = conn.execute(
        "SELECT a.category, a.queries, a.precision_at_1, b.precision_at_1, a.map, b.map"
        " FROM evaluation_categories a JOIN evaluation_categories b ON b.category = a.category"
        " WHERE a.run_id = %s AND b.run_id = %s ORDER BY b.map - a.map DESC, a.category",
        (run_a, run_b),
    )
    names = ("category", "queries", "precision_at_1 A", "precision_at_1 B", "map A", "map B")
    return [dict(zip(names, r, strict=True)) for r in rows]


@dataclass(frozen=True)
class ConfusionMatrix:
    """Shares of A's top-k neighbours in B among a few categories (rows A, columns B, both in `categories`)."""

    categories: list[str]  # most wrong neighbours (given plus received) first
    own: dict[str, float]  # A -> share of A's neighbours in A (the diagonal: precision@k)
    pairs: list[dict[str, Any]]  # off-diagonal cells with at least one neighbour: category, other, neighbours, rate


def most_confused(conn: psycopg.Connection, run_id: int, limit: int = 15, around: str | None = None) -> list[str]:
    """The categories with the most wrong neighbours in a run, counting those given (as A) and received (as B).

    around: a category to centre on: it comes first, followed by those it is most confused with (either way).
    """
    rows = conn.execute(
        "SELECT name FROM (SELECT category AS name, other AS peer, neighbours FROM evaluation_confusions"
        " WHERE run_id = %(run)s UNION ALL SELECT other, category, neighbours FROM evaluation_confusions"
        " WHERE run_id = %(run)s) t WHERE %(around)s::text IS NULL OR peer = %(around)s OR name = %(around)s"
        " GROUP BY name ORDER BY bool_or(name = %(around)s) DESC,"
        " sum(neighbours) FILTER (WHERE %(around)s::text IS NULL OR peer = %(around)s) DESC NULLS LAST, name"
        " LIMIT %(limit)s",
        {"run": run_id, "around": around, "limit": limit},
    )
    return [r[0] for r in rows]


def own_shares(conn: psycopg.Connection, run_id: int, categories: list[str]) -> dict[str, float]:
    """Share of each category's stored top-k neighbours in the category itself (the confusion chart's diagonal)."""
    rows = conn.execute(
        "SELECT q.category, (count(*) FILTER (WHERE i.category = q.category))::float8 / count(*)"
        " FROM evaluation_neighbours n JOIN images q ON q.id = n.query_id JOIN images i ON i.id = n.image_id"
        " WHERE n.run_id = %s AND q.category = ANY(%s) GROUP BY q.category",
        (run_id, categories),
    )
    return dict(rows.fetchall())


def confusion_matrix(
    conn: psycopg.Connection, run_id: int, limit: int = 15, around: str | None = None
) -> ConfusionMatrix:
    """The `limit` most confused categories of a run (or of one category, `around`) and the shares between them."""
    names = most_confused(conn, run_id, limit, around)
    rows = conn.execute(
        "SELECT category, other, neighbours, rate FROM evaluation_confusions"
        " WHERE run_id = %s AND category = ANY(%s) AND other = ANY(%s) ORDER BY category, other",
        (run_id, names, names),
    )
    pairs = [dict(zip(("category", "other", "neighbours", "rate"), r, strict=True)) for r in rows]
    return ConfusionMatrix(names, own_shares(conn, run_id, names), pairs)


def save_run(
    conn: psycopg.Connection,
    model: Model,
    report: dict[str, Any],
    keys: list[str],
    pairs: list[dict[str, Any]],
    neighbours: Iterable[tuple[int, int, int, float]],
    sample: int | None,
    seed: int,
    generation: int | None = None,
) -> int:
    """Write the run, its categories, confusion pairs and every query's neighbours in one transaction.

    keys: the metric names of `report`'s per-category rows, in the table's column order;
    neighbours: (query image id, rank, neighbour image id, distance) rows;
    generation: the collection generation read before the vectors (default: the current one).
    """
    with conn.transaction(), conn.cursor() as cur:
        run_id = cur.execute(
            "INSERT INTO evaluation_runs (model_id, k, queries, images, sample, seed, method, seconds, overall, macro,"
            " generation) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb,"
            " coalesce(%s, (SELECT generation FROM collection_generation))) RETURNING id",
            (
                model.id,
                report["k"],
                report["queries"],
                report["images"],
                sample,
                seed,
                report["method"],
                report["seconds"],
                json.dumps(report["overall"]),
                json.dumps(report["macro"]),
                generation,
            ),
        ).fetchone()[0]
        cur.executemany(
            "INSERT INTO evaluation_categories VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (run_id, c["category"], c["images"], c["queries"], *(c[key] for key in keys))
                for c in report["categories"]
            ],
        )
        cur.executemany(
            "INSERT INTO evaluation_confusions VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(run_id, p["category"], p["other"], p["neighbours"], p["queries"], p["rate"], p["lift"]) for p in pairs],
        )
        with cur.copy("COPY evaluation_neighbours (run_id, query_id, rank, image_id, distance) FROM STDIN") as copy:
            for row in neighbours:
                copy.write_row((run_id, *row))
    return run_id
