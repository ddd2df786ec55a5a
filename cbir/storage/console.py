"""Run an analyst's SQL safely: one read-only statement, as a role that can only read the cbir tables.

Safety rests on the database, not on parsing the text:
- the connection logs in as `cbir_reader` (cbir/storage/migrations/030_reader_role.sql), which holds SELECT on the cbir
  tables and nothing else, so even a statement that escapes the checks below can change nothing;
- every query runs in a READ ONLY transaction with a statement timeout, and is always rolled back;
- the text goes through a server-side cursor (DECLARE ... CURSOR FOR), which the server accepts for one
  SELECT/VALUES/TABLE/WITH query only and which psycopg sends with the extended protocol, which refuses
  several statements; rows are fetched up to the limit, so a huge result never reaches memory.
The keyword check in front only turns the common refusals into a clear message.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from cbir.config import settings
from cbir.errors import BadArgument, DatabaseUnavailable, QueryRefused
from cbir.storage import db

READER_ROLE = "cbir_reader"
POOL_SIZE = 4  # the console's connections, shared by every dashboard session
PER_SESSION = 2  # queries one session may run at once, so one analyst cannot take every connection
BUSY_WAIT_S = 3.0  # how long a query waits for a free connection before the console says it is busy
# Set on every connection the console opens: a role's own defaults (ALTER ROLE cbir_reader SET ...) are the
# reader's to change, so the console's read-only mode and timeouts never rest on them.
_GUARANTEES = {
    "default_transaction_read_only": "on",
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "1min",
    "lock_timeout": "5s",
}
_POOL_LOCK = threading.RLock()
_running: Counter[str | None] = Counter()  # queries running now, per session
_QUERY_WORDS = {"SELECT", "WITH", "VALUES", "TABLE"}  # run through a server-side cursor
_PLAN_WORDS = {"EXPLAIN", "SHOW"}  # small outputs, run as one prepared statement
_COMMENTS = re.compile(r"\s+|--[^\n]*(\n|$)|/\*.*?\*/", re.DOTALL)

_MODEL = "(SELECT min(id) FROM models WHERE kind = 'vector')"
_FIRST_IMAGE = f"""WITH q AS (
    SELECT e.model_id::text AS model, min(e.image_id) AS image
    FROM embeddings e WHERE e.model_id = {_MODEL} GROUP BY e.model_id
)"""
_LATEST_RUN = """WITH latest AS (
    SELECT r.id, r.k, m.name AS model FROM evaluation_runs r JOIN models m ON m.id = r.model_id
    ORDER BY r.created_at DESC, r.id DESC LIMIT 1
)"""
EXAMPLES: dict[str, str] = {
    "Nearest neighbours of an image": f"""\
-- The 10 images nearest to an image, through the model's HNSW index: what `cbir search <id> -k 10` returns.
-- cbir_neighbors(image_id, k, model): the model by name or id, optional when only one is stored; the image
-- itself is left out. Distance: cosine 0-2 (neural models), Hamming bits (phash). Simplest form:
--   SELECT * FROM cbir_neighbors(42, 10, 'efficientnet-lite0')
-- Here: the first image of the first vector model.
{_FIRST_IMAGE}
SELECT n.image_id, n.category, n.distance, n.path
FROM q, cbir_neighbors(q.image, 10, q.model) n""",
    "Images nearest to a category's centroid": f"""\
-- cbir_neighbors_of_vector(vector, k, model): neighbours of any vector of the model's dimension,
-- here the mean embedding (centroid) of the first category, through the HNSW index
WITH c AS (
    SELECT e.model_id::text AS model, avg(e.embedding) AS centroid
    FROM embeddings e JOIN images i ON i.id = e.image_id
    WHERE e.model_id = {_MODEL} AND i.category = (SELECT min(category) FROM images)
    GROUP BY e.model_id
)
SELECT n.image_id, n.category, n.distance
FROM c, cbir_neighbors_of_vector(c.centroid, 12, c.model) n""",
    "How a neighbour search uses the index": f"""\
-- EXPLAIN of the query cbir_neighbors runs: look for "Index Scan using embeddings_hnsw_model_<id>"
-- (on a few hundred images the planner may sort them exactly instead: same rows, no index needed).
-- The query text itself: SELECT cbir_neighbors_query(cbir_model('phash'))
{_FIRST_IMAGE}
SELECT p.plan FROM q, cbir_neighbors_plan(q.image, 10, q.model) AS p(plan)""",
    "Worst categories of the latest evaluation": f"""\
-- Per-category quality of the newest `cbir eval` run, worst first (mAP@k and precision 0-1)
{_LATEST_RUN}
SELECT c.category, c.map_at_k, c.precision_at_1, c.queries, latest.model
FROM evaluation_categories c JOIN latest ON latest.id = c.run_id
ORDER BY c.map_at_k, c.category
LIMIT 20""",
    "Most confused pairs of the latest evaluation": f"""\
-- Where the newest `cbir eval` run went wrong: category A's top-k neighbours that fall in category B
-- (lift: how many times more often than random retrieval would put them there)
{_LATEST_RUN}
SELECT c.category, c.other, c.neighbours, c.rate, c.lift
FROM evaluation_confusions c JOIN latest ON latest.id = c.run_id
ORDER BY c.neighbours DESC, c.rate DESC
LIMIT 20""",
    "Category centroids and their distances": f"""-- Each category's mean embedding; closest pairs first
WITH c AS (
    SELECT i.category, avg(e.embedding) AS centroid, count(*) AS images
    FROM embeddings e JOIN images i ON i.id = e.image_id
    WHERE e.model_id = {_MODEL} AND i.category IS NOT NULL
    GROUP BY i.category
)
SELECT a.category AS category_a, b.category AS category_b, a.centroid <=> b.centroid AS cosine_distance
FROM c a JOIN c b ON a.category < b.category
ORDER BY cosine_distance
LIMIT 50""",
    "Images farthest from their category centroid": f"""-- Outliers: images least like the rest of their category
WITH c AS (
    SELECT i.category, avg(e.embedding) AS centroid
    FROM embeddings e JOIN images i ON i.id = e.image_id
    WHERE e.model_id = {_MODEL} AND i.category IS NOT NULL
    GROUP BY i.category
)
SELECT i.id, i.category, i.path, e.embedding <=> c.centroid AS distance_to_centroid
FROM embeddings e
JOIN images i ON i.id = e.image_id
JOIN c ON c.category = i.category
WHERE e.model_id = {_MODEL}
ORDER BY distance_to_centroid DESC
LIMIT 20""",
    "Images per category": """-- How many images each category holds, and their typical size
SELECT category, count(*) AS images, round(avg(width)) AS avg_width, round(avg(height)) AS avg_height
FROM images
GROUP BY category
ORDER BY images DESC""",
    "Images found at several paths": """-- Byte-identical copies: one image row, several paths
SELECT i.id, i.category, count(*) AS paths, array_agg(p.path ORDER BY p.path) AS all_paths
FROM images i JOIN image_paths p ON p.image_id = i.id
GROUP BY i.id
HAVING count(*) > 1
ORDER BY paths DESC""",
}


# Which (table, column) pairs hold image ids: images.id and every column with a foreign key to it.
_IMAGE_ID_COLUMNS = """
SELECT c.rel, c.att FROM unnest(%s::oid[], %s::int[]) AS c(rel, att)
WHERE (c.rel = 'images'::regclass
       AND c.att = (SELECT attnum FROM pg_attribute WHERE attrelid = 'images'::regclass AND attname = 'id'))
   OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contype = 'f' AND k.conrelid = c.rel
              AND k.confrelid = 'images'::regclass AND k.conkey = ARRAY[c.att]::smallint[])
"""


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # True when more than row_limit rows existed
    image_columns: list[int] = field(default_factory=list)  # positions of columns holding images.id values


def first_keyword(text: str) -> str:
    """The statement's first word, upper-case, after leading comments, whitespace and parentheses."""
    rest = text
    while True:
        match = _COMMENTS.match(rest)
        if not match or not match.group(0):
            break
        rest = rest[match.end() :]
    word = re.match(r"[(\s]*([A-Za-z_]+)", rest)
    return word.group(1).upper() if word else ""


def _check_text(text: str) -> tuple[str, str]:
    """The statement without trailing semicolons and its first keyword; refuses what can never run here."""
    statement = text.strip().rstrip(";").rstrip()
    keyword = first_keyword(statement)
    if not keyword:
        raise QueryRefused("empty query: write one SELECT statement")
    if keyword not in _QUERY_WORDS | _PLAN_WORDS:
        raise QueryRefused(
            f"{keyword} is not allowed: the SQL console runs one read-only query "
            f"(SELECT, WITH, VALUES, TABLE, EXPLAIN or SHOW)"
        )
    return statement, keyword


def reader_url() -> str:
    """How to log in as cbir_reader: CBIR_READER_URL, else the database's URL with that user and no password."""
    s = settings()
    return s.reader_url or _derived_reader_url(str(s.home), s.database_url)


@cache
def _derived_reader_url(home: str, database_url: str | None) -> str:
    """Derived once per database: the console then costs no extra connection per query."""
    url = db.database_url()
    with db.connect(url):
        pass  # the role comes with the migrations
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{READER_ROLE}@{host}"))


def _reader_connect_error(url: str, exc: Exception) -> DatabaseUnavailable:
    if not isinstance(exc, psycopg.OperationalError):  # logged in, but the session could not be set up
        return DatabaseUnavailable(
            f"the SQL console cannot set up its session as {READER_ROLE} at {db.describe_url(url)} "
            f"({db.first_line(exc)})"
        )
    return DatabaseUnavailable(
        f"the SQL console cannot log in as {READER_ROLE} at {db.describe_url(url)} ({db.first_line(exc)}). "
        f"Where cbir may not create roles, an administrator runs cbir/storage/migrations/030_reader_role.sql, "
        f"sets a password for {READER_ROLE} and you set CBIR_READER_URL"
    )


def reader_pool(url: str | None = None) -> ConnectionPool:
    """Connections logged in as cbir_reader, shared by the dashboard's sessions (one pool per URL).

    Under a lock: the first queries of several sessions at once share one pool instead of each opening one.
    """
    with _POOL_LOCK:
        return _reader_pool(url or reader_url())


@cache
def _reader_pool(url: str, max_size: int = POOL_SIZE) -> ConnectionPool:
    try:
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            _configure_reader(conn)  # fail now, with a clear message, and open no pool
    except psycopg.Error as exc:
        raise _reader_connect_error(url, exc) from None
    return db.open_pool(url, max_size, configure=_configure_reader, timeout=BUSY_WAIT_S)


def _configure_reader(conn: psycopg.Connection) -> None:
    """Set the console's guarantees on a new connection: the reader may have changed its role's defaults."""
    found = conn.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_catalog.pg_extension WHERE extname = 'vector'"
    ).fetchone()
    path = ", ".join(dict.fromkeys(["public", *(found or [])]))  # where pgvector's type is, whatever the role says
    for name, value in {"search_path": path, **_GUARANTEES}.items():
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
    register_vector(conn)


@contextlib.contextmanager
def reader_connection(session: str | None = None) -> Iterator[psycopg.Connection]:
    """A pooled reader connection within the session's share; QueryRefused in one line when none is free."""
    with _POOL_LOCK:
        if session is not None and _running[session] >= PER_SESSION:
            raise QueryRefused(
                f"you are already running {PER_SESSION} queries: wait for one to finish (the console's "
                f"{POOL_SIZE} connections are shared by everyone)"
            )
        _running[session] += 1
    try:
        with reader_pool().connection() as conn:
            yield conn
    except PoolTimeout:
        raise QueryRefused(
            f"the SQL console is busy: its {POOL_SIZE} connections are all running queries; try again in a moment"
        ) from None
    finally:
        with _POOL_LOCK:
            _running[session] -= 1
            if not _running[session]:
                del _running[session]


def _image_columns(conn: psycopg.Connection, cur: psycopg.Cursor, columns: list[str]) -> list[int]:
    """Result columns holding image ids: taken straight from images.id or a column referencing it (the server
    says where each column comes from), or computed and named image_id (as cbir_neighbors returns them)."""
    result = cur.pgresult
    if result is None:
        return []
    origins = {n: (result.ftable(n), result.ftablecol(n)) for n in range(len(columns))}
    from_tables = {n: o for n, o in origins.items() if o[0]}
    found = set()
    if from_tables:
        rels, atts = zip(*from_tables.values(), strict=True)
        found = set(conn.execute(_IMAGE_ID_COLUMNS, (list(rels), list(atts))).fetchall())
    return [n for n, o in origins.items() if o in found or (not o[0] and columns[n] == "image_id")]


def _fetch(conn: psycopg.Connection, statement: str, keyword: str, row_limit: int) -> SqlResult:
    if keyword in _PLAN_WORDS:
        cur = conn.cursor()
        cur.execute(statement, prepare=True)  # extended protocol: one statement only
    else:
        cur = conn.cursor(name="cbir_console")  # DECLARE: one query only, rows fetched on demand
        cur.execute(statement)
    rows = cur.fetchmany(row_limit + 1)
    columns = [c.name for c in cur.description or []]
    image_columns = _image_columns(conn, cur, columns)
    cur.close()
    return SqlResult(
        columns=columns,
        rows=[tuple(r) for r in rows[:row_limit]],
        truncated=len(rows) > row_limit,
        image_columns=image_columns,
    )


def _explain(exc: psycopg.Error, timeout_ms: int) -> QueryRefused:
    """A one-line message for a refused or failed query."""
    first = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
    if isinstance(exc, errors.QueryCanceled):
        return QueryRefused(f"query cancelled: it ran longer than the {timeout_ms} ms statement timeout")
    if isinstance(exc, errors.InsufficientPrivilege | errors.ReadOnlySqlTransaction):
        return QueryRefused(f"refused: {first} (the SQL console is read-only)")
    if isinstance(exc, errors.SyntaxError) and "multiple commands" in first:
        return QueryRefused("refused: several statements in one text; the SQL console runs one query at a time")
    if isinstance(exc, errors.FeatureNotSupported) and "data-modifying" in first:
        return QueryRefused("refused: INSERT, UPDATE or DELETE inside WITH (the SQL console is read-only)")
    return QueryRefused(f"query failed: {first}")


def _is_reader(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT session_user = %s", (READER_ROLE,)).fetchone()[0]


def _run(conn: psycopg.Connection, statement: str, keyword: str, row_limit: int, timeout_ms: int) -> SqlResult:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE or not conn.autocommit:
        raise BadArgument("run_readonly needs an idle connection in autocommit mode")
    if not _is_reader(conn):
        raise BadArgument(f"run_readonly needs a connection logged in as {READER_ROLE} (pass none to get one)")
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(int(timeout_ms))))
            result = _fetch(conn, statement, keyword, row_limit)
            raise psycopg.Rollback()  # never commit anything, whatever the text did
    except psycopg.Error as exc:
        raise _explain(exc, timeout_ms) from None
    finally:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock_all()")  # session locks would outlive the rollback
    return result


def run_readonly(
    text: str,
    *,
    row_limit: int = 1000,
    timeout_ms: int = 5000,
    conn: psycopg.Connection | None = None,
    session: str | None = None,
) -> SqlResult:
    """Run ONE statement as the read-only role cbir_reader inside a read-only transaction with a statement
    timeout; raises cbir.errors.QueryRefused with a one-line message on refusal, error or timeout.

    `session` (the dashboard's session or login) may run at most PER_SESSION queries at once."""
    if row_limit < 1 or timeout_ms < 1:
        raise BadArgument("row_limit and timeout_ms must be positive")
    statement, keyword = _check_text(text)
    if conn is not None:
        return _run(conn, statement, keyword, row_limit, timeout_ms)
    with reader_connection(session) as pooled:
        return _run(pooled, statement, keyword, row_limit, timeout_ms)
