"""/readyz tells the truth about a busy process (PostgreSQL, a real `ugc serve`): with every blocking
thread and every pooled connection held by requests, it still answers 200 "ok" within its
deadline, and /metrics still reads the projections, since their checks run on a thread and a
connection of their own (`Services.probing`, `Database.probing`).

Requests that wait behind a lock on read tables stand in for a healthy burst: GET
/api/v1/users/me/ holds the blocking threads (and the blocking pool's one connection), lists of
notifications the event loop's pool's one. Before, /readyz queued behind them for a thread and
answered 503 "no answer within 0.8 s": an orchestrator would have taken a healthy pod out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from api.readiness import READY_DEADLINE
from api.services import BLOCKING_THREADS
from tests.servers import Server
from tests.test_overload import behind_locks, signed_in

BUSY = 2 * BLOCKING_THREADS  # requests of each kind at once: every thread taken, more waiting for one


@pytest.fixture
def served(backend: str, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    # The requests keep their threads and connections while they wait behind the lock.
    with behind_locks(backend, tmp_path, queue_timeout=30) as served:
        yield served


async def held_requests(base: str, headers: dict[str, str]) -> list[int]:
    limits = httpx.Limits(max_connections=2 * BUSY, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        paths = ["/api/v1/users/me/"] * BUSY + ["/api/v1/notifications/"] * BUSY
        answers = await asyncio.gather(*(client.get(path, headers=headers) for path in paths))
        return [answer.status_code for answer in answers]


@pytest.mark.timeout(120)
def test_readiness_and_metrics_answer_while_requests_hold_every_thread_and_connection(
    served: tuple[Server, str],
) -> None:
    server, url = served
    headers = signed_in(server.url)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/readyz/").json()["status"] == "ok"
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE users, notifications IN ACCESS EXCLUSIVE MODE")
    statuses: list[int] = []
    burst = threading.Thread(target=lambda: statuses.extend(asyncio.run(held_requests(server.url, headers))))
    burst.start()
    try:
        time.sleep(2.0)  # the burst has taken every thread and connection, and waits behind the lock
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/healthz/").status_code == 200
            probes = []
            for _ in range(3):
                started = time.monotonic()
                ready = client.get("/readyz/")
                probes.append((ready.status_code, ready.json(), time.monotonic() - started))
            started = time.monotonic()
            try:
                scraped: httpx.Response | None = client.get("/metrics/", timeout=3)
            except httpx.TimeoutException:
                scraped = None
            scrape_took = time.monotonic() - started
        still_held = burst.is_alive()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        burst.join()
    assert still_held, "the burst was over before the probes: it held nothing"
    for status, body, took in probes:
        assert status == 200 and body["status"] == "ok", body
        assert took < READY_DEADLINE + 0.5, took
    assert scraped is not None, f"no answer to /metrics/ within {scrape_took:.1f} s"
    assert scraped.status_code == 200 and "ugc_projection_lag_seconds" in scraped.text, scraped.text[-500:]
    assert scrape_took < 2.0, scrape_took
    assert set(statuses) == {200}, sorted(set(statuses))  # served once the lock went
