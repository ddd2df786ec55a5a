"""The SQL console cannot write, escape its role, read server files or run forever (issue 6, security).

Every attempt runs against the real embedded Postgres holding a small real collection; after each one the
tables' checksums, the list of relations and roles, and the file system are compared with before.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from support import ROOT, make_subset, run_cli
from support.apptest import page

from cbir.analysis.evaluate import evaluate
from cbir.errors import CbirError
from cbir.indexing.ingest import ingest
from cbir.storage import console, db, embedded
from cbir.storage.console import EXAMPLES, READER_ROLE, reader_url, run_readonly

MARKER = Path("/tmp/cbir-reliability-console-marker")


@pytest.fixture(scope="module")
def collection(cbir_home: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = make_subset(tmp_path_factory.mktemp("photos"), {"elephant": 4, "rhino": 4, "airplanes": 4})
    shutil.copy(root / "rhino" / "image_0001.jpg", root / "elephant" / "copy.jpg")  # an alias for the examples
    ingest([root], tiny_model, batch_size=8, progress=False)
    evaluate(progress=False)  # the evaluation examples read its run
    yield root
    console.reader_pool().close()  # before the fixture's server stops under it
    console._reader_pool.cache_clear()


def snapshot() -> dict:
    """Checksums of every cbir table, the relations and roles that exist, and the marker file."""
    with db.connect() as conn:
        sums = {
            table: conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            ).fetchone()
            for table in ("images", "image_paths", "models", "embeddings", "schema_migrations")
        }
        relations = conn.execute(
            "SELECT array_agg(relname ORDER BY relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public'"
        ).fetchone()[0]
        roles = conn.execute(
            "SELECT array_agg((rolname, rolsuper, rolconfig)::text ORDER BY rolname) FROM pg_roles"
        ).fetchone()[0]
    return {"tables": sums, "relations": relations, "roles": roles, "marker": MARKER.exists()}


ATTEMPTS = {
    "insert": "INSERT INTO models (name, kind, dim) VALUES ('pwned', 'vector', 3)",
    "update": "UPDATE images SET category = 'pwned'",
    "delete": "DELETE FROM embeddings",
    "drop": "DROP TABLE embeddings",
    "create": "CREATE TABLE pwned (x int)",
    "truncate": "TRUNCATE images CASCADE",
    "alter": "ALTER TABLE images ADD COLUMN pwned int",
    "copy_to_program": f"COPY (SELECT 1) TO PROGRAM 'touch {MARKER}'",
    "set_read_write": "SET default_transaction_read_only = off",
    "set_role": "SET ROLE postgres",
    "reset_role": "RESET ROLE",
    "begin_commit": "BEGIN; DELETE FROM embeddings; COMMIT",
    "commit_first": "COMMIT; DELETE FROM embeddings",
    "several_statements": "SELECT 1; DELETE FROM embeddings",
    "several_after_comment": "-- harmless\nSELECT 1; DROP TABLE embeddings",
    "do_block": f"DO $$BEGIN RESET ROLE; EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {MARKER}'''; END$$",
    # These pass the keyword check: the database itself refuses them.
    "cte_delete": "WITH gone AS (DELETE FROM embeddings RETURNING 1) SELECT count(*) FROM gone",
    "explain_analyze_delete": "EXPLAIN ANALYZE DELETE FROM embeddings",
    "pg_read_file": "SELECT pg_read_file('/etc/passwd')",
    "pg_ls_dir": "SELECT pg_ls_dir('.')",
    "lo_import": "SELECT lo_import('/etc/passwd')",
    "select_into": "SELECT * INTO pwned FROM images",
    "select_for_update": "SELECT id FROM images FOR UPDATE",
    "nextval": "SELECT nextval('images_id_seq')",
    "schema_migrations": "SELECT * FROM schema_migrations",
    # The neighbour functions (migrations/040) run with the caller's rights: through them nothing more is allowed.
    "replace_function": "CREATE OR REPLACE FUNCTION cbir_model(model text) RETURNS models"
    " LANGUAGE sql AS $$SELECT * FROM models LIMIT 1$$",
    "function_then_delete": "SELECT * FROM cbir_neighbors(1, 5); DELETE FROM embeddings",
    "function_in_cte_delete": "WITH gone AS (DELETE FROM embeddings RETURNING image_id)"
    " SELECT n.* FROM gone, cbir_neighbors(gone.image_id, 5) n",
}


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_attempt_is_refused_and_database_unchanged(collection: Path, name: str) -> None:
    before = snapshot()
    with pytest.raises(CbirError) as refused:
        run_readonly(ATTEMPTS[name])
    message = str(refused.value)
    assert "\n" not in message and len(message) < 300, message
    assert any(word in message for word in ("not allowed", "refused", "read-only")), message
    assert snapshot() == before


def test_role_switch_inside_a_query_stays_reader(collection: Path) -> None:
    """set_config('role') is how text escapes SET LOCAL ROLE under a superuser session; here it gains nothing."""
    before = snapshot()
    result = run_readonly("SELECT set_config('role', 'none', true) AS role, current_user, session_user")
    assert result.rows == [("none", READER_ROLE, READER_ROLE)]
    with pytest.raises(CbirError, match="refused"):
        run_readonly("SELECT set_config('role', 'none', true), pg_read_file('/etc/passwd')")
    assert snapshot() == before


def test_reader_login_cannot_write_even_outside_the_console(collection: Path) -> None:
    """The database, not the console's checks, is what refuses: a bare cbir_reader session cannot write."""
    before = snapshot()
    with psycopg.connect(reader_url(), autocommit=True) as conn:
        for statement in (
            "DELETE FROM embeddings",
            "SET ROLE postgres",
            "CREATE TABLE public.pwned (x int)",
            "CREATE OR REPLACE FUNCTION public.cbir_model(model text DEFAULT NULL) RETURNS models"
            " LANGUAGE sql AS $$SELECT * FROM models LIMIT 1$$",
            "ALTER FUNCTION cbir_neighbors(bigint, integer, text, integer) SECURITY DEFINER",
        ):
            with pytest.raises(psycopg.Error):
                conn.execute(statement)
        with pytest.raises(psycopg.Error):  # read-only by default, and even read-write it lacks the privilege
            conn.execute("SET default_transaction_read_only = off; DELETE FROM embeddings")
        with pytest.raises(psycopg.Error):
            conn.execute(f"DO $$BEGIN RESET ROLE; EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {MARKER}'''; END$$")
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    assert snapshot() == before


@pytest.mark.parametrize(
    "text",
    ["SELECT pg_sleep(60)", "SELECT set_config('statement_timeout', '0', true), pg_sleep(60)"],
    ids=["pg_sleep", "timeout_switched_off_inside"],
)
def test_long_query_is_cut_off_by_the_timeout(collection: Path, text: str) -> None:
    with pytest.raises(CbirError, match="ran longer than the 500 ms statement timeout"):
        run_readonly(text, timeout_ms=500)
    assert run_readonly("SELECT 1").rows == [(1,)]  # the pooled connection is usable again


def test_row_limit_and_truncation(collection: Path) -> None:
    result = run_readonly("SELECT g FROM generate_series(1, 10000000) g", row_limit=10, timeout_ms=20000)
    assert result.rows == [(g,) for g in range(1, 11)] and result.truncated
    whole = run_readonly("SELECT id FROM images", row_limit=1000)
    assert len(whole.rows) == 12 and not whole.truncated and whole.columns == ["id"]


def test_session_state_does_not_leak_between_queries(collection: Path) -> None:
    run_readonly("SELECT pg_advisory_lock(1667852658)")  # the migration lock's key
    with db.connect() as conn:  # would block (and hang the test) if the lock were still held
        assert conn.execute("SELECT pg_try_advisory_lock(1667852658)").fetchone() == (True,)
        conn.execute("SELECT pg_advisory_unlock(1667852658)")
    assert run_readonly("SHOW transaction_read_only").rows == [("on",)]


@pytest.mark.parametrize("title", list(EXAMPLES))
def test_examples_run(collection: Path, title: str) -> None:
    result = run_readonly(EXAMPLES[title])
    assert result.columns and result.rows, title


def test_privileged_connection_is_refused(collection: Path) -> None:
    with db.connect() as conn, pytest.raises(CbirError, match="logged in as cbir_reader"):
        run_readonly("SELECT 1", conn=conn)


def test_migrations_succeed_without_createrole(fresh_home: Path) -> None:
    """An owner that may not create roles still gets a working cbir; only the SQL console says why it is off."""
    admin = embedded.server().get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE ROLE app_owner LOGIN NOCREATEROLE NOSUPERUSER")
        conn.execute("CREATE DATABASE app OWNER app_owner")
    with psycopg.connect(embedded.with_database(admin, "app"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")  # pgvector is not a trusted extension: an administrator's job
    host = str(fresh_home / "pgdata")
    os.environ["CBIR_DATABASE_URL"] = f"postgresql://app_owner@/app?host={quote(host)}"
    try:
        with db.connect() as conn:
            applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'cbir_reader'").fetchone() == (0,)
        assert "030_reader_role.sql" in applied
        with pytest.raises(CbirError, match="cannot log in as cbir_reader.*CBIR_READER_URL") as off:
            run_readonly("SELECT 1")
        print(f"\nconsole without the role: {off.value}")
    finally:
        del os.environ["CBIR_DATABASE_URL"]


# --- exposure: network, passwords, uploads ------------------------------------------------------------------


def test_embedded_server_listens_on_its_unix_socket_only(collection: Path, cbir_home: Path) -> None:
    pgdata = cbir_home / "pgdata"
    with db.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP at all
        socket_dirs = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    assert [Path(d.strip()).resolve() for d in socket_dirs.split(",")] == [pgdata.resolve()]
    assert stat.S_IMODE(pgdata.stat().st_mode) == 0o700  # only the server's own user (and root) reach the socket


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://analyst:s3cret-pw@db.example:5432/cbir",
        "postgresql://analyst@db.example/cbir?sslmode=require&password=s3cret-pw",
        "host=db.example user=analyst password=s3cret-pw dbname=cbir",
        "host=db.example password='s3cret-pw with space' dbname=cbir",
    ],
)
def test_describe_url_masks_the_password(url: str) -> None:
    shown = db.describe_url(url)
    assert "s3cret" not in shown and "***" in shown and "db.example" in shown


def test_password_never_printed_by_status_or_errors(collection: Path) -> None:
    """`cbir db url` prints the usable URL (psql needs it); status lines and errors mask the password."""
    trusted = db.database_url()  # the embedded server trusts its socket, so any password is accepted
    with_password = trusted.replace("postgres:@", "postgres:s3cret-pw@")
    assert with_password != trusted
    env = {**os.environ, "CBIR_DATABASE_URL": with_password}
    status = run_cli("db", "status", env=env, check=True)
    assert "s3cret" not in status.stdout + status.stderr and "postgres:***@" in status.stdout
    assert run_cli("db", "url", env=env, check=True).stdout.strip() == with_password
    wrong = {**env, "CBIR_DATABASE_URL": with_password.replace("/cbir?", "/no_such_db?")}
    failed = run_cli("db", "status", env=wrong)
    assert failed.returncode == 2 and "s3cret" not in failed.stdout + failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "no_such_db" in failed.stderr


def test_uploaded_bytes_never_reach_sql_or_disk(collection: Path, cbir_home: Path, tmp_path: Path) -> None:
    """An upload carrying SQL in its metadata is searched; its bytes appear in no statement and no file."""
    marker = f"upload-marker-{uuid.uuid4().hex}"
    info = PngInfo()
    info.add_text("Comment", f"'); DROP TABLE images; -- {marker}")
    upload = tmp_path / "upload.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(upload, pnginfo=info)
    assert marker.encode() in upload.read_bytes()
    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    log = cbir_home / "pgdata" / "log"
    offset = log.stat().st_size
    script = textwrap.dedent(
        f"""
        import pathlib
        from cbir.storage import console, db
        from cbir.retrieval.search import search
        conn = db.connect()
        conn.execute("SET log_statement = 'all'")  # every statement this session sends, with its parameters
        hits = search(pathlib.Path({str(upload)!r}).read_bytes(), k=3, conn=conn)
        print(len(hits))
        conn.execute("CHECKPOINT")
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "3", proc.stderr
    with open(log, "rb") as handle:
        handle.seek(offset)
        logged = handle.read()
    assert b"FROM embeddings" in logged  # the search's statements were logged...
    assert marker.encode() not in logged  # ...and the upload's bytes were in none of them
    written = [p for p in [*cbir_home.rglob("*"), *(tmp_path / "cwd").rglob("*")] if p.is_file()]
    assert written and not [p for p in written if marker.encode() in p.read_bytes()]


SOURCES = sorted({*ROOT.glob("cbir/**/*.py"), *ROOT.glob("*.py")})
SQL_CALLS = {"execute", "executemany", "stream", "SQL"}


def _constant(node: ast.expr) -> bool:
    """A module constant (UPPER_CASE name), a literal, or a str method applied to constants (", ".join(COLS))."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id.lstrip("_").isupper()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _constant(node.func.value) and all(_constant(arg) for arg in node.args)
    return False


def _built_from_strings(node: ast.expr) -> bool:
    """Text that values were pasted into: an f-string, `"..." % x`, `"..." + x` or `"...".format(x)`.

    Module constants (column lists, the database's name) may be formatted in; nothing else.
    """
    if isinstance(node, ast.JoinedStr):
        return not all(_constant(part.value) for part in node.values if isinstance(part, ast.FormattedValue))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return not (_constant(node.left) and _constant(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, ast.Constant | ast.JoinedStr) and not all(map(_constant, node.args))
    return False


@pytest.mark.parametrize(
    ("code", "pasted"),
    [
        ("f\"SELECT * FROM images WHERE path = '{path}'\"", True),
        ('"SELECT %s" % category', True),
        ('"SELECT " + text', True),
        ('"SELECT {}".format(name)', True),
        ('f"SELECT {obj.attr} FROM images"', True),
        ('"SELECT * FROM images WHERE id = %s"', False),
        ('sql.SQL("SELECT {} FROM images").format(sql.Identifier(column))', False),
        ('f"SELECT {COLUMNS} FROM models"', False),
        ("f\"SELECT {', '.join(CATEGORY_COLUMNS)} FROM t\"", False),
    ],
)
def test_sql_string_check_tells_pasted_values_from_constants(code: str, pasted: bool) -> None:
    assert _built_from_strings(ast.parse(code, mode="eval").body) is pasted


def test_sql_is_never_built_by_string_formatting() -> None:
    """Values reach SQL as parameters or psycopg.sql literals only, never by f-strings, %, + or str.format."""
    assert any(path.parent.name == "app_pages" for path in SOURCES)  # the dashboard's pages are checked
    found = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in SQL_CALLS and _built_from_strings(node.args[0]):
                found.add((str(path.relative_to(ROOT)), ast.unparse(node.args[0])))
    assert found == set()


def test_reader_reads_every_cbir_table_but_not_migrations(collection: Path) -> None:
    with db.connect() as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert {"images", "embeddings", "schema_migrations"} <= set(tables)
    for table in tables:
        if table == "schema_migrations":
            with pytest.raises(CbirError, match="permission denied"):
                run_readonly(f"SELECT count(*) FROM {table}")
        else:
            assert run_readonly(f"SELECT count(*) FROM {table}").columns == ["count"], table


def test_dashboard_never_shows_the_password(collection: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    with_password = db.database_url().replace("postgres:@", "postgres:s3cret-pw@")
    monkeypatch.setenv("CBIR_DATABASE_URL", with_password)
    at = page("home")
    shown = "\n".join(str(e.value) for kind in (at.markdown, at.caption, at.info, at.error, at.warning) for e in kind)
    assert "postgres:***@" in shown and "s3cret" not in shown
    db.pool(with_password).close()
    db.pool.cache_clear()


def test_dashboard_listens_on_loopback_only(collection: Path) -> None:
    """`cbir serve` with no options, and `streamlit run` from the project (its .streamlit/config.toml)."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cbir", "serve", "--port", str(port), "--no-open"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, listening = time.monotonic() + 90, []
        while not listening and time.monotonic() < deadline:
            assert proc.poll() is None, "cbir serve exited"
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    listening += [c.laddr for c in child.net_connections("inet") if c.status == psutil.CONN_LISTEN]
            time.sleep(0.5)
        assert listening, "the dashboard never listened"
        assert {addr.ip for addr in listening} == {"127.0.0.1"} and {addr.port for addr in listening} == {port}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_migrations_leave_other_owners_tables_alone(collection: Path, cbir_home: Path) -> None:
    """On a shared database, cbir grants cbir_reader its own tables only: another owner's table is no error."""
    admin = embedded.server().get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE ROLE shared_owner LOGIN NOCREATEROLE NOSUPERUSER")
        conn.execute("CREATE DATABASE shared OWNER shared_owner")
    with psycopg.connect(embedded.with_database(admin, "shared"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE public.payroll (salary int)")  # the superuser's, not shared_owner's
    host = quote(str(cbir_home / "pgdata"))
    os.environ["CBIR_DATABASE_URL"] = f"postgresql://shared_owner@/shared?host={host}"
    os.environ["CBIR_READER_URL"] = f"postgresql://cbir_reader@/shared?host={host}"
    try:
        with db.connect() as conn:
            applied = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        assert {"030_reader_role.sql", "031_reader_grants.sql"} <= applied
        assert run_readonly("SELECT count(*) FROM images").rows == [(0,)]
        with pytest.raises(CbirError, match="permission denied for table payroll"):
            run_readonly("SELECT * FROM payroll")
    finally:
        console._reader_pool(os.environ.pop("CBIR_READER_URL")).close()
        del os.environ["CBIR_DATABASE_URL"]
