"""A list's page read is bounded in time: each of its statements is cancelled (PostgreSQL) or
interrupted (SQLite) after UGC_DB_READ_TIMEOUT seconds and the request answers 503, whatever the
client asked for and whatever holds the statement up; the read database's sessions themselves stay
unbounded, since projections' batches and migrations run on them. On SQLite a coroutine's read that
waited for one of their threads longer than UGC_QUEUE_TIMEOUT is turned away unread (503), as
PostgreSQL's that waited that long for a pooled connection.

On PostgreSQL a lock held on the table is what holds the statements up here (a slow plan cannot be
made to order): with UGC_DB_LOCK_TIMEOUT far longer than the lock, only the page bound can end the
wait early. SQLite's readers never wait for a writer's lock: a statement that counts a long way
(`LONG_COUNT`) stands for a slow plan there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.app import build_app
from tests.conftest import Api, checked_client
from tests.orders_world import a_deal, place
from tests.test_database_outages import UNAVAILABLE, locked
from ugc.clock import MovableClock
from ugc.config import READ_STATEMENT_TIMEOUT, ConfigError, Settings, read_statement_timeout
from ugc.platform.blocking import Busy
from ugc.platform.database import Database
from ugc.platform.outages import database_away
from ugc.wiring import runtime

HELD = 30.0  # seconds the lock is held, and far below UGC_DB_LOCK_TIMEOUT here
# SQLite counting to thirty million: ~5 s of work here, past every bound below; unbounded, it ends
# and answers (the tests then fail in seconds rather than hang).
LONG_COUNT = (
    "WITH RECURSIVE counted(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counted WHERE n < 30000000) "
    "SELECT COUNT(*) AS n FROM counted"
)
# Counting to two million: a read longer than the bounds below (~0.3 s here), yet quick.
SHORT_COUNT = LONG_COUNT.replace("30000000", "2000000")


@pytest.fixture
def postgres(backend: str, settings: Settings) -> str:
    if backend != "postgres":
        pytest.skip("a PostgreSQL statement_timeout")
    return settings.database_url


def test_a_page_read_is_cancelled_at_ugc_db_read_timeout(postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UGC_DB_READ_TIMEOUT", "0.05")
    db = Database(postgres)

    async def read_async() -> None:
        try:
            await db.snapshot_async(("SELECT pg_sleep(%s) AS slept", [HELD]))
        finally:
            await db.aclose()

    try:
        with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
            db.snapshot(("SELECT 1 AS n", []), ("SELECT pg_sleep(%s) AS slept", [HELD]))
        assert database_away(cancelled.value)  # answered 503, as an outage is
        with pytest.raises(psycopg.errors.QueryCanceled):
            asyncio.run(read_async())
        with db.read() as cur:
            assert cur.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "0"}
    finally:
        db.close()


def test_the_bound_is_ugc_db_read_timeout() -> None:
    assert read_statement_timeout({}) == READ_STATEMENT_TIMEOUT
    assert read_statement_timeout({"UGC_DB_READ_TIMEOUT": "0.5"}) == 0.5
    with pytest.raises(ConfigError, match="UGC_DB_READ_TIMEOUT must be a positive number of seconds"):
        read_statement_timeout({"UGC_DB_READ_TIMEOUT": "0"})


@pytest.mark.timeout(4 * HELD)
def test_lists_answer_503_at_the_bound_rather_than_wait(
    postgres: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UGC_DB_LOCK_TIMEOUT", str(4 * HELD))
    monkeypatch.setenv("UGC_DB_READ_TIMEOUT", "0.2")
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        place(api, deal)
        headers = deal.buyer["headers"]
        for table, path in [
            ("services", "/api/v1/services/?search=bounded"),
            ("orders", "/api/v1/orders/"),
            ("notifications", "/api/v1/notifications/"),
        ]:
            with locked(postgres, table, release_after=HELD):
                answer = client.get(path, headers=deal.creator["headers"] if table == "notifications" else headers)
            assert (answer.status_code, answer.json()) == (503, UNAVAILABLE), table
            assert client.get(path, headers=headers).status_code == 200


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("UGC_DB_READ_TIMEOUT", "0.05")
    return Database(f"sqlite:///{tmp_path / 'read.sqlite3'}")


def test_a_sqlite_page_read_is_interrupted_at_ugc_db_read_timeout(sqlite_db: Database) -> None:
    db = sqlite_db

    async def read_async() -> None:
        try:
            await db.snapshot_async((LONG_COUNT, []))
        finally:
            await db.aclose()

    try:
        with pytest.raises(sqlite3.OperationalError) as interrupted:
            db.snapshot(("SELECT 1 AS n", []), (LONG_COUNT, []))
        assert database_away(interrupted.value)  # answered 503, as an outage is
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            asyncio.run(read_async())
        # Each statement has the whole bound, and only a page's reads are bounded: the connection
        # that was interrupted reads on, past the bound, once outside a snapshot.
        started = time.monotonic()
        with db.read() as cur:
            assert cur.execute(SHORT_COUNT).fetchone() == {"n": 2_000_000}
        assert time.monotonic() - started > 0.05
    finally:
        db.close()


def test_a_sqlite_read_that_waited_for_a_thread_past_ugc_queue_timeout_is_turned_away(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UGC_DB_ASYNC_POOL_MAX", "1")
    monkeypatch.setenv("UGC_QUEUE_TIMEOUT", "0.1")
    monkeypatch.setenv("UGC_DB_READ_TIMEOUT", "2")
    db = Database(sqlite_db.url)  # the settings above are read when it is made
    sqlite_db.close()

    async def two_at_once() -> tuple[BaseException | list[list[dict[str, int]]], ...]:
        slow = asyncio.create_task(db.snapshot_async((LONG_COUNT, [])))
        await asyncio.sleep(0.05)  # the one thread is the slow read's
        try:
            return tuple(await asyncio.gather(slow, db.snapshot_async(("SELECT 1 AS n", [])), return_exceptions=True))
        finally:
            await db.aclose()

    async def alone() -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        try:
            return await db.fetch_async("SELECT 1 AS n"), await db.snapshot_async(("SELECT 2 AS n", []))
        finally:
            await db.aclose()

    try:
        slow, waiting = asyncio.run(two_at_once())
        assert isinstance(waiting, Busy)  # its turn came after the slow read's 2 s: turned away, unread
        assert isinstance(slow, sqlite3.OperationalError) and "interrupted" in str(slow)
        assert asyncio.run(alone()) == ([{"n": 1}], [[{"n": 2}]])
    finally:
        db.close()
