"""Issue 29 (held-out attack review): each broken promise reproduced as the review did it, then fixed."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from cbir.auth import throttle, users
from cbir.errors import BadArgument, BadImage, DatabaseUnavailable, LoginRefused, QueryRefused
from cbir.images import read_image_file
from cbir.storage import console, db, embedded
from cbir.storage.console import run_readonly
from cbir.storage.schema import console_schema


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no wrong passwords counted (the throttle lives as long as its process)."""
    monkeypatch.setattr(users, "THROTTLE", throttle.Throttle())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_folder_as_a_query_path_says_so_in_one_line_and_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """Item 1: `open(fd)` sat outside the try, so each folder query raised IsADirectoryError and leaked its fd."""
    (tmp_path / "elephant").mkdir()
    before = open_fds()
    for folder in [tmp_path, tmp_path / "elephant"] * 100:
        with pytest.raises(BadImage, match="^is a folder, not an image$"):
            read_image_file(folder)
    assert open_fds() == before


def test_a_password_over_the_limit_is_refused_when_set_and_at_login_never_cut(cbir_home: Path) -> None:
    """Item 7: authenticate cut the attempt to 1,024 characters, so "k"*1024 + anything logged in as carol."""
    with db.connect() as conn:
        users.add_user(conn, "carol", "k" * users.MAX_PASSWORD)
        with pytest.raises(BadArgument, match="8 to 1024 characters"):
            users.add_user(conn, "carol2", "k" * (users.MAX_PASSWORD + 1))
        assert [a.name for a in users.list_users(conn)] == ["carol"]
    try:
        for tail in ("ANYTHING", "k"):
            with pytest.raises(LoginRefused, match="^wrong user name or password$"):
                users.authenticate(db.connect, "carol", "k" * users.MAX_PASSWORD + tail, "192.0.2.1")
        assert users.authenticate(db.connect, "carol", "k" * users.MAX_PASSWORD, "192.0.2.2").name == "carol"
    finally:
        with db.connect() as conn:
            users.remove_user(conn, "carol")


@pytest.fixture
def new_console(cbir_home: Path) -> Iterator[None]:
    """The console's pools as a dashboard process starting now finds them; closed after the test."""
    console._reader_pool.cache_clear()
    yield
    if console._reader_pool.cache_info().currsize:
        console.reader_pool().close()
    console._reader_pool.cache_clear()


def as_owner(*statements: str) -> None:
    with db.connect() as conn:
        for statement in statements:
            conn.execute(statement)


READER_DEFAULTS = (  # what migrations/030_reader_role.sql leaves, restored after a test changed the role
    "ALTER ROLE cbir_reader RESET ALL",
    "ALTER ROLE cbir_reader PASSWORD NULL",
    "ALTER ROLE cbir_reader SET default_transaction_read_only = on",
    "ALTER ROLE cbir_reader SET statement_timeout = '30s'",
)


def test_the_reader_changing_its_own_role_leaves_the_console_guarantees_in_place(new_console: None) -> None:
    """Item 5: as cbir_reader in psql the review turned off read-only, the timeout and the search path for good."""
    with psycopg.connect(console.reader_url(), autocommit=True) as reader:
        for step in (
            "SET default_transaction_read_only = off",
            "ALTER ROLE cbir_reader SET statement_timeout = 0",
            "ALTER ROLE cbir_reader PASSWORD 'x'",
            "ALTER ROLE cbir_reader SET search_path = ''",
            "ALTER ROLE cbir_reader SET default_transaction_read_only = off",
            "ALTER ROLE cbir_reader SET idle_in_transaction_session_timeout = 0",
        ):
            reader.execute(step)
    try:
        got = run_readonly(
            "SELECT '[1,2]'::vector AS v, current_setting('search_path') AS path,"
            " current_setting('default_transaction_read_only') AS ro"
        )
        assert got.rows[0][0].to_list() == [1.0, 2.0] and got.rows[0][1:] == ("public", "on")
        with console.reader_connection() as conn:  # outside the console's own transaction too
            shown = [conn.execute(f"SHOW {name}").fetchone()[0] for name in console._GUARANTEES]
        assert shown == list(console._GUARANTEES.values())
        with pytest.raises(QueryRefused, match="^query cancelled: it ran longer than the 300 ms"):
            run_readonly("SELECT pg_sleep(5)", timeout_ms=300)
        tables, _ = console_schema()
        assert "images" in {t.name for t in tables}
    finally:
        as_owner(*READER_DEFAULTS)


def test_a_console_that_cannot_set_up_says_so_in_one_line_and_piles_up_no_pools(
    new_console: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 5: each failed first query started another pool that kept reconnecting (PoolTimeout after 30 s)."""
    no_vector = embedded.with_database(console.reader_url(), "postgres")  # a database without pgvector
    monkeypatch.setenv("CBIR_READER_URL", no_vector)
    threads = threading.active_count()
    start = time.monotonic()
    for _ in range(3):
        with pytest.raises(DatabaseUnavailable) as failed:
            run_readonly("SELECT 1")
        assert "\n" not in str(failed.value) and "cannot set up its session as cbir_reader" in str(failed.value)
    assert time.monotonic() - start < 15
    time.sleep(1)
    assert threading.active_count() == threads and console._reader_pool.cache_info().currsize == 0


def test_six_first_console_calls_at_once_share_one_pool(new_console: None) -> None:
    """Doubtful item: six first calls at once opened seven reader connections in separate pools."""

    def reader_backends() -> int:
        with db.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'cbir_reader' AND pid <> pg_backend_pid()"
            return conn.execute(query).fetchone()[0]

    idle = reader_backends()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda n: run_readonly(f"SELECT {n}, pg_sleep(0.5)").rows[0][0], range(6)))
    assert results == list(range(6))
    assert console._reader_pool.cache_info().currsize == 1
    assert reader_backends() - idle <= console.POOL_SIZE


def sleeping_readers() -> int:
    with db.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'cbir_reader' AND state = 'active'"
        return conn.execute(query).fetchone()[0]


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_full_console_says_busy_in_one_line_and_one_session_cannot_take_every_connection(
    new_console: None,
) -> None:
    """Item 2: four sessions sleeping held every connection; a fifth query got a PoolTimeout traceback after 32 s."""
    sleep = "SELECT pg_sleep(4)"
    with ThreadPoolExecutor(console.POOL_SIZE + 1) as pool:
        own = [pool.submit(run_readonly, sleep, timeout_ms=30_000, session="greedy") for _ in range(2)]
        wait_for(lambda: sleeping_readers() == 2)
        with pytest.raises(QueryRefused, match=r"^you are already running 2 queries: wait for one to finish"):
            run_readonly("SELECT 2", session="greedy")
        others = [pool.submit(run_readonly, sleep, timeout_ms=30_000, session=f"analyst{n}") for n in range(2)]
        wait_for(lambda: sleeping_readers() == 4)
        start = time.monotonic()
        with pytest.raises(QueryRefused, match="^the SQL console is busy: its 4 connections are all running queries"):
            run_readonly("SELECT 2", session="fifth")
        refused_after = time.monotonic() - start
        for future in own + others:
            assert future.result().columns == ["pg_sleep"]
    assert console.BUSY_WAIT_S <= refused_after < console.BUSY_WAIT_S + 3
    assert run_readonly("SELECT 2", session="fifth").rows == [(2,)]
