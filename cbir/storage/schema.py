"""The schema as the database describes it: tables a connection can read, their columns, types, comments
(migrations/041_comments.sql) and row counts, and cbir's SQL functions (migrations/040_neighbour_functions.sql).

Read from the catalogs, never listed by hand, so the SQL page's browser and caption (run as the console's
role) show exactly what the console can read, and `cbir db status --schema` (run as cbir) shows everything,
with which of it the console can read.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from cbir.errors import QueryRefused
from cbir.storage.console import READER_ROLE, reader_connection

# Relations (tables, views, materialised views, partitioned tables) this session may SELECT, outside the
# system schemas; `reader` says whether cbir_reader (the SQL console) may too.
_TABLES = """
SELECT n.nspname, c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''),
       coalesce(r.oid IS NOT NULL AND has_schema_privilege(r.oid, n.oid, 'USAGE')
                AND has_table_privilege(r.oid, c.oid, 'SELECT'), false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_roles r ON r.rolname = %(reader)s
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
  AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname <> 'public', n.nspname, c.relname
"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(col_description(a.attrelid, a.attnum), '')
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Functions of the database's own (not an extension's, not triggers) in the public schema, e.g. cbir_neighbors.
_FUNCTIONS = """
SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ')', pg_get_function_result(p.oid),
       coalesce(obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.deptype = 'e')
ORDER BY obj_description(p.oid, 'pg_proc') LIKE 'Internal:%%', p.proname, p.oid
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class Table:
    name: str  # schema-qualified unless in public, as a query names it
    comment: str
    rows: int
    reader: bool  # cbir_reader (the SQL console) may SELECT it
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Function:
    signature: str  # name(arguments with defaults)
    result: str
    comment: str

    @property
    def internal(self) -> bool:
        return self.comment.startswith("Internal:")


def tables(conn: psycopg.Connection) -> list[Table]:
    """Every table this connection may read, public first, with its columns and exact row count."""
    found = []
    for schema, name, comment, reader in conn.execute(_TABLES, {"reader": READER_ROLE}).fetchall():
        qualified = name if schema == "public" else f"{schema}.{name}"
        relation = sql.Identifier(schema, name)
        columns = tuple(Column(*row) for row in conn.execute(_COLUMNS, (relation.as_string(conn),)).fetchall())
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()[0]
        found.append(Table(qualified, comment, rows, reader, columns))
    return found


def functions(conn: psycopg.Connection) -> list[Function]:
    """The database's own SQL functions (cbir_neighbors and its helpers), user-facing ones first."""
    return [Function(*row) for row in conn.execute(_FUNCTIONS).fetchall()]


def console_schema(timeout_ms: int = 10_000) -> tuple[list[Table], list[Function]]:
    """What the SQL console can read and call, read as its role in a read-only transaction."""
    with reader_connection() as conn:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms)))
                return tables(conn), functions(conn)
        except psycopg.Error as exc:
            first = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
            raise QueryRefused(f"cannot read the schema as {READER_ROLE}: {first}") from None
