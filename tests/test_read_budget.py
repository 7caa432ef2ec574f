"""A list's page read is bounded in time (PostgreSQL): each of its statements is cancelled after
UGC_DB_READ_TIMEOUT seconds and the request answers 503, whatever the client asked for and whatever
holds the statement up; the read database's sessions themselves stay unbounded, since projections'
batches and migrations run on them.

A lock held on the table is what holds the statements up here (a slow plan cannot be made to order):
with UGC_DB_LOCK_TIMEOUT far longer than the lock, only the page bound can end the wait early.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from api.app import build_app
from tests.conftest import Api, checked_client
from tests.orders_world import a_deal, place
from tests.test_database_outages import UNAVAILABLE, locked
from ugc.clock import MovableClock
from ugc.config import READ_STATEMENT_TIMEOUT, ConfigError, Settings, read_statement_timeout
from ugc.platform.database import Database
from ugc.platform.outages import database_away
from ugc.wiring import runtime

HELD = 30.0  # seconds the lock is held, and far below UGC_DB_LOCK_TIMEOUT here


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
