"""SQL for analysts: cbir_neighbors and friends return what `cbir search` returns, through the same HNSW index
query; every table and column explains itself (COMMENT ON); the SQL page shows the schema, thumbnails and charts.

Real Caltech-101 photos, embedded by the tiny random DINOv2 (a vector model: its numbers mean nothing, which is
fine for comparing two ways of running one query) and by phash, in the real embedded Postgres.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql
from support import make_subset, run_cli
from support.apptest import page, submit_sql, texts

from cbir.errors import CbirError
from cbir.indexing.ingest import ingest
from cbir.retrieval.search import search
from cbir.storage import collection, console, db
from cbir.storage.console import reader_url, run_readonly
from cbir.storage.models import Model, get_model
from cbir.storage.neighbours import nearest, nearest_query
from cbir.storage.schema import console_schema

CATEGORIES = {"elephant": 8, "rhino": 8, "airplanes": 8}
FORCE_INDEX = ("SET LOCAL enable_seqscan = off", "SET LOCAL enable_sort = off")  # tiny tables: planner would sort
MODELS = ["vector", "phash"]


@pytest.fixture(scope="module")
def stored(cbir_home: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Model]]:
    """24 real photos under two models: the tiny DINOv2 (vector, cosine) and phash (64 bits, Hamming)."""
    root = make_subset(tmp_path_factory.mktemp("photos"), CATEGORIES)
    ingest([root], tiny_model, batch_size=8, progress=False)
    ingest([root], "phash", batch_size=8, progress=False)
    with db.connect() as conn:
        conn.execute("ANALYZE")
        found = {"vector": get_model(conn, tiny_model), "phash": get_model(conn, "phash")}
    yield found
    console.reader_pool().close()  # before the module's server stops under it
    console._reader_pool.cache_clear()


def image_ids() -> list[int]:
    with db.connect() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM images ORDER BY id")]


def reader() -> psycopg.Connection:
    """A bare session as the SQL console's role, for what the console's one-statement runs cannot show."""
    return psycopg.connect(reader_url(), autocommit=True)


@pytest.mark.parametrize("kind", MODELS)
def test_cbir_neighbors_returns_what_cbir_search_returns(stored: dict[str, Model], kind: str) -> None:
    model = stored[kind]
    query = image_ids()[5]
    cli = json.loads(run_cli("search", str(query), "-k", "10", "--json", "--model", model.name, check=True).stdout)
    result = run_readonly(f"SELECT * FROM cbir_neighbors({query}, 10, '{model.id}')")  # as cbir_reader
    assert result.columns == ["image_id", "path", "category", "distance"]
    assert [r[0] for r in result.rows] == [h["id"] for h in cli] and len(cli) == 10
    assert [r[1:3] for r in result.rows] == [(h["path"], h["category"]) for h in cli]
    assert all(abs(r[3] - h["distance"]) <= 1e-6 for r, h in zip(result.rows, cli, strict=True))
    assert query not in [r[0] for r in result.rows]
    distances = [r[3] for r in result.rows]
    assert distances == sorted(distances)
    with reader() as conn:  # every image, by model name as well as by id, against the API the CLI calls
        for image in image_ids():
            rows = conn.execute("SELECT * FROM cbir_neighbors(%s, 10, %s)", (image, model.name)).fetchall()
            hits = search(image, k=10, model=model.name)
            assert [(r[0], round(r[3], 6)) for r in rows] == [(h.id, round(h.distance, 6)) for h in hits], image


@pytest.mark.parametrize("kind", MODELS)
def test_the_function_runs_cbir_searchs_query_through_the_hnsw_index(stored: dict[str, Model], kind: str) -> None:
    """cbir_neighbors_plan EXPLAINs the text cbir_neighbors EXECUTEs; it must be the plan of neighbours.py's query.

    On 24 rows the planner would rather sort (exact, same rows): seq scans and sorts are switched off, which can
    only make it take an index the query's expression, operator and model_id literally match.
    """
    model = stored[kind]
    query = image_ids()[3]
    index = f"embeddings_hnsw_model_{model.id}"
    with reader() as conn, conn.transaction():
        for statement in FORCE_INDEX:
            conn.execute(statement)
        plan = [r[0] for r in conn.execute("SELECT * FROM cbir_neighbors_plan(%s, 10, %s)", (query, model.name))]
    with db.connect() as conn, conn.transaction():
        for statement in FORCE_INDEX:
            conn.execute(statement)
        text, params = nearest_query(model, collection.stored_vector(conn, model, query), 10, exclude=[query])
        expected = [r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + text, params)]
    assert f"Index Scan using {index} on embeddings e" in "\n".join(plan), plan
    column = "((bits)::bit(64) <~> " if kind == "phash" else f"((embedding)::vector({model.dim}) <=> "
    assert any(line.strip().startswith(f"Order By: {column}") for line in plan), plan
    # psycopg sends Python's [query] as the smallest integer array type; the function's is bigint[].
    assert [line.replace("::smallint[]", "::bigint[]") for line in expected] == plan


def index_scans(conn: psycopg.Connection, index: str) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (index,)).fetchone()[0]


@pytest.mark.parametrize("kind", MODELS)
def test_the_function_really_scans_the_index(stored: dict[str, Model], kind: str) -> None:
    """Not only its plan: the server's own count of scans of the model's index goes up when the function runs."""
    model = stored[kind]
    index = f"embeddings_hnsw_model_{model.id}"
    with db.connect() as owner, reader() as conn:
        before = index_scans(owner, index)
        with conn.transaction():
            for statement in FORCE_INDEX:
                conn.execute(statement)
            rows = conn.execute("SELECT * FROM cbir_neighbors(%s, 5, %s)", (image_ids()[0], str(model.id))).fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")  # report this session's counters now
        deadline = time.monotonic() + 10
        while index_scans(owner, index) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(rows) == 5 and index_scans(owner, index) > before


def test_search_settings_come_from_the_argument_the_session_or_200(stored: dict[str, Model]) -> None:
    vector = stored["vector"]
    with reader() as conn:
        conn.execute("SELECT '[1]'::vector")  # loads pgvector, which defines the hnsw.* settings
        show = "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"
        outside = conn.execute(show).fetchone()
        assert outside == ("40", "off")  # pgvector's defaults
        cases = [(10, None, None, "200"), (10, None, 300, "300"), (10, 50, 300, "50"), (500, 50, None, "500")]
        for k, argument, session, expected in cases:
            with conn.transaction():
                if session:
                    conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(session))
                conn.execute("SELECT cbir_search_settings(%s, %s)", (k, argument))
                assert conn.execute(show).fetchone() == (expected, "relaxed_order"), (k, argument, session)
        conn.execute("SELECT * FROM cbir_neighbors(%s, 10, %s)", (image_ids()[0], vector.name)).fetchall()
        assert conn.execute(show).fetchone() == outside  # the call changed them for its own duration only


def test_neighbours_of_a_vector_and_of_bits(stored: dict[str, Model]) -> None:
    """A vector (a category's centroid) or a hash that is not stored: the same rows as the API's nearest()."""
    vector, phash = stored["vector"], stored["phash"]
    bits = "01" * 32
    with reader() as conn:  # no pgvector types registered here: vectors come as text, '[x,y,...]'
        centroid = conn.execute(
            "SELECT avg(e.embedding)::text FROM embeddings e JOIN images i ON i.id = e.image_id"
            " WHERE e.model_id = %s AND i.category = 'rhino'",
            (vector.id,),
        ).fetchone()[0]
        rows = conn.execute("SELECT * FROM cbir_neighbors_of_vector(%s::vector, 8, %s)", (centroid, vector.name))
        by_vector = rows.fetchall()
        by_bits = conn.execute("SELECT * FROM cbir_neighbors_of_bits(%s::varbit, 8, 'phash')", (bits,)).fetchall()
    with db.connect() as conn:
        expected_vector = nearest(conn, vector, np.array(json.loads(centroid), dtype=np.float32), k=8)
        expected_bits = nearest(conn, phash, np.array([c == "1" for c in bits]), k=8)
    assert [(r[0], round(r[3], 6)) for r in by_vector] == [(h.id, round(h.distance, 6)) for h in expected_vector]
    assert [(r[0], r[3]) for r in by_bits] == [(h.id, h.distance) for h in expected_bits]
    assert len(by_vector) == len(by_bits) == 8


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("cbir_neighbors(987654321, 10, 'phash')", "no image with id 987654321"),
        ("cbir_neighbors({image}, 10, 'no-such-model')", "no model named or numbered 'no-such-model' (models: "),
        ("cbir_neighbors({image}, 10, '999')", "no model named or numbered '999'"),
        ("cbir_neighbors({image})", "several models are stored ("),
        ("cbir_neighbors({image}, 0, 'phash')", "k must be between 1 and 1000, not 0"),
        ("cbir_neighbors_of_vector('[1,2,3]', 5, '{vector}')", "has 32 dimensions, the query vector 3"),
        ("cbir_neighbors_of_vector('[1,2,3]', 5, 'phash')", "stores 64-bit hashes: use cbir_neighbors_of_bits"),
        ("cbir_neighbors_of_bits(B'101', 5, 'phash')", "hashes have 64 bits, the query 3 bits"),
        ("cbir_neighbors({image}, 5, '1; DELETE FROM embeddings')", "no model named or numbered '1; DELETE FROM"),
    ],
    ids=["image", "model", "model_id", "ambiguous", "k", "dims", "bits_model", "bit_length", "injection"],
)
def test_a_missing_model_or_image_is_one_clear_line(stored: dict[str, Model], call: str, expected: str) -> None:
    text = "SELECT * FROM " + call.format(image=image_ids()[0], vector=stored["vector"].id)
    with pytest.raises(CbirError) as failed:
        run_readonly(text)
    message = str(failed.value)
    assert expected in message and "\n" not in message and len(message) < 300, message
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone() == (48,)  # nothing written, nothing lost


def test_the_functions_run_with_the_callers_rights(stored: dict[str, Model]) -> None:
    """SECURITY INVOKER: cbir_reader's read-only SELECT rights are all they have; it cannot redefine them."""
    with db.connect() as conn:
        definer = conn.execute(
            "SELECT array_agg(proname) FROM pg_proc WHERE proname LIKE 'cbir\\_%%' AND prosecdef"
        ).fetchone()[0]
    assert definer is None
    with reader() as conn:
        for statement in (
            "CREATE OR REPLACE FUNCTION public.cbir_model(model text DEFAULT NULL) RETURNS models"
            " LANGUAGE sql AS $$SELECT * FROM models LIMIT 1$$",
            "DROP FUNCTION cbir_neighbors(bigint, integer, text, integer)",
            "ALTER FUNCTION cbir_neighbors(bigint, integer, text, integer) SECURITY DEFINER",
        ):
            with pytest.raises(psycopg.Error):
                conn.execute(statement)


def test_default_model_is_the_only_one(fresh_home: Path) -> None:
    files = make_subset(fresh_home / "photos", {"dalmatian": 6})
    ingest([files], "phash", progress=False)
    first = image_ids()[0]
    try:
        result = run_readonly(f"SELECT * FROM cbir_neighbors({first})")
        assert [r[0] for r in result.rows] == [h.id for h in search(first, k=10)] and len(result.rows) == 5
        assert run_readonly("SELECT name FROM cbir_model()").rows == [("phash",)]
    finally:
        console.reader_pool().close()  # this home's pool, before its server stops


# --- the schema explains itself ------------------------------------------------------------------------------


# cbir's own tables: those of the owner of `images`, in any schema but the system's.
CBIR_TABLES = """
SELECT c.oid, n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relowner = (SELECT relowner FROM pg_class WHERE oid = 'images'::regclass)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
"""


def test_every_column_of_every_cbir_table_has_a_comment(stored: dict[str, Model]) -> None:
    with db.connect() as conn:
        missing = conn.execute(
            f"WITH t AS ({CBIR_TABLES})"
            " SELECT t.name || ' (the table)' FROM t WHERE obj_description(t.oid, 'pg_class') IS NULL"
            " UNION ALL"
            " SELECT t.name || '.' || a.attname FROM t JOIN pg_attribute a ON a.attrelid = t.oid"
            " WHERE a.attnum > 0 AND NOT a.attisdropped AND col_description(t.oid, a.attnum) IS NULL"
            " ORDER BY 1"
        ).fetchall()
        checked = conn.execute(f"SELECT count(*) FROM ({CBIR_TABLES}) t").fetchone()[0]
    assert checked >= 15  # the tables of migrations 001-031, and schema_migrations
    assert not missing, (
        "no COMMENT ON for: " + ", ".join(r[0] for r in missing) + ". Add COMMENT ON TABLE / COMMENT ON COLUMN, "
        "with units, in the migration that creates them (see cbir/storage/migrations/041_comments.sql): psql's \\d+, "
        "cbir db status --schema and the dashboard's SQL page show them"
    )


def test_images_comments_say_what_and_in_which_units(stored: dict[str, Model]) -> None:
    """What psql's `\\d+ images` shows in its Description column, read from pg_description."""
    with db.connect() as conn:
        comments = dict(
            conn.execute(
                "SELECT c.relname || '.' || a.attname, d.description FROM pg_description d"
                " JOIN pg_class c ON c.oid = d.objoid"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid"
                " WHERE d.classoid = 'pg_class'::regclass AND c.relname IN ('images', 'embeddings')"
            ).fetchall()
        )
    assert "pixels" in comments["images.width"] and "pixels" in comments["images.height"]
    assert "bytes" in comments["images.bytes"] and "JPEG" in comments["images.thumbnail"]
    assert "cosine distance 0-2" in comments["embeddings.embedding"]
    assert "Hamming distance in bits" in comments["embeddings.bits"]


def test_db_status_schema_prints_tables_columns_comments_and_functions(stored: dict[str, Model]) -> None:
    out = run_cli("db", "status", "--schema", check=True).stdout
    assert "table images (24 rows; the SQL console reads it): One row per distinct image" in out
    assert "table schema_migrations (" in out and "not readable by the SQL console" in out
    width = next(line for line in out.splitlines() if line.strip().startswith("width "))
    assert "integer" in width and "width in pixels" in width
    assert "cbir_neighbors(query_image bigint, k integer DEFAULT 10, model text DEFAULT NULL" in out


def test_console_schema_is_every_table_the_reader_can_read(stored: dict[str, Model]) -> None:
    tables, functions = console_schema()
    with db.connect() as conn:
        readable = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                " AND has_table_privilege('cbir_reader', c.oid, 'SELECT')"
            )
        }
        counts = {
            t.name: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t.name))).fetchone()[0]
            for t in tables
        }
    names = {t.name for t in tables}
    assert names == readable and "schema_migrations" not in names
    evaluation = {"evaluation_runs", "evaluation_categories", "evaluation_confusions", "evaluation_neighbours"}
    assert evaluation | {"model_inputs", "projection_reducers", "images", "embeddings"} <= names
    assert all(t.reader and t.rows == counts[t.name] and t.columns and t.comment for t in tables)
    public = {f.signature.split("(")[0] for f in functions if not f.internal}
    assert {"cbir_neighbors", "cbir_neighbors_of_vector", "cbir_neighbors_of_bits", "cbir_neighbors_plan"} <= public


def test_console_marks_columns_of_image_ids(stored: dict[str, Model]) -> None:
    """Columns straight from images.id or a column referencing it, and the functions' image_id, are image ids."""
    cases = {
        "SELECT * FROM cbir_neighbors((SELECT min(id) FROM images), 3, 'phash')": [0],
        "SELECT i.category, i.id FROM images i LIMIT 3": [1],
        "WITH q AS (SELECT query_id, image_id, rank FROM evaluation_neighbours) SELECT * FROM q": [0, 1],
        "SELECT id, name FROM models": [],
        "SELECT 5 AS id, count(*) AS image_count FROM images": [],
    }
    for text, expected in cases.items():
        assert run_readonly(text).image_columns == expected, text


# --- the SQL page (Streamlit AppTest; the browser test drives the real editor) --------------------------------


def test_sql_page_lists_every_readable_table_and_shows_thumbnails_and_a_chart(stored: dict[str, Model]) -> None:
    tables, _ = console_schema()
    at = page("sql")
    caption = at.caption[0].value
    assert all(f"`{t.name}`" in caption for t in tables), caption
    assert all(any(e.label.startswith(f"{t.name} · ") for e in at.expander) for t in tables)
    query = image_ids()[2]
    submit_sql(at, f"SELECT * FROM cbir_neighbors({query}, 6, 'phash')")
    assert not at.exception and not at.error, texts(at)
    assert at.session_state["sql_result"].image_columns == [0]
    shown = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(at.get("image")) == 6 and len(shown) == 6
    assert len(at.get("vega_lite_chart")) == 1  # category + distance: a bar chart
    submit_sql(at, "SELECT id, name FROM models")
    assert not at.get("image")  # model ids are not image ids
    assert "A chart needs a text column and a number, or two numbers." in texts(at)


def test_an_event_runs_once(stored: dict[str, Model]) -> None:
    """Reruns (a changed row limit, a click elsewhere) do not run the last query again."""
    at = submit_sql(page("sql"), "SELECT now()")
    first = at.session_state["sql_result"].rows
    at.number_input[0].set_value(999).run()
    assert at.session_state["sql_result"].rows == first
    at.session_state["sql_editor"] = {**at.session_state["sql_editor"], "id": uuid.uuid4().hex[:8]}
    assert at.run().session_state["sql_result"].rows != first
