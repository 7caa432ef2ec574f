"""Pools whose every session was terminated serve again at once (ugc/platform/idle_check.py): the
first dead connection found has the pool's other idle ones checked together, so a checkout does not
meet them one by one, each after a longer pause of psycopg_pool's (0, then 1 s, 2 s, 4 s...: 7 s
for a pool of four, a PoolTimeout after 10 s for five)."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

from ugc.platform.database import Database
from ugc.platform.idle_check import IDLE_BEFORE_CHECK

CONNECTIONS = 4  # each pool's default size (ugc/config.py: PoolSizes)
PAUSE = 1.0  # psycopg_pool's pause after the second failed check of one checkout


def terminate_all(url: str) -> int:
    """End every other session of the database, as a restart or an operator would; how many."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_a_pool_whose_sessions_were_terminated_serves_at_once(backend: str, database_url: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no sessions to terminate")
    db = Database(database_url)
    try:
        together = threading.Barrier(CONNECTIONS)

        def hold() -> None:
            with db.transaction() as cur:
                cur.execute("SELECT 1")
                together.wait(10)  # all at once: the pool opens a connection for each

        threads = [threading.Thread(target=hold) for _ in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        async def fill() -> None:
            await asyncio.gather(*(db.fetch_async("SELECT pg_sleep(0.2)") for _ in range(CONNECTIONS)))

        async def time_a_read() -> float:
            started = time.monotonic()
            assert await db.fetch_async("SELECT 1 AS one") == [{"one": 1}]
            return time.monotonic() - started

        async def scenario() -> tuple[int, float, float]:
            try:
                await fill()
                ended = terminate_all(database_url)
                time.sleep(IDLE_BEFORE_CHECK + 0.1)  # every pooled connection is idle by then: each is pinged
                started = time.monotonic()
                with db.transaction() as cur:
                    cur.execute("SELECT 1")
                return ended, time.monotonic() - started, await time_a_read()
            finally:
                await db.aclose()

        ended, blocking, asynchronous = asyncio.run(scenario())
        assert ended >= 2 * CONNECTIONS
        assert blocking < PAUSE and asynchronous < PAUSE, (blocking, asynchronous)
    finally:
        db.close()
