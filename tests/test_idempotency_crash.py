"""An `Idempotency-Key` claimed by a worker that died before its command was stored is taken over by
a retry after `UGC_IDEMPOTENCY_IN_FLIGHT` seconds, not answered 409 "in flight" for the day.

Real processes on PostgreSQL: `ugc serve --workers 2`; the test holds the orders log's table lock so
the placing request claims its key and then waits to append; while it waits, the workers are
SIGKILLed (the one holding the claim is among them), and uvicorn starts new ones.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.backends import environment, fresh_database, postgres_available
from tests.conftest import Api
from tests.orders_world import a_deal
from tests.test_faults import DEADLINE, Processes, placed_in_log
from ugc.config import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL"),
]

IN_FLIGHT = 3  # seconds (UGC_IDEMPOTENCY_IN_FLIGHT)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path / "logs")
    started.log_dir.mkdir()
    try:
        yield started
    finally:
        started.stop()


def waiting_for_the_log_lock(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether a session waits for a lock on the orders log's table (the append that was claimed)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE NOT l.granted AND c.relname = 'orders_events'"
    ).fetchone()
    return bool(row and row[0])


def test_a_key_whose_worker_died_before_appending_is_taken_over_after_the_in_flight_time(
    tmp_path: Path, processes: Processes
) -> None:
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path) | {"UGC_IDEMPOTENCY_IN_FLIGHT": str(IN_FLIGHT)}
        server = processes.serve(env, workers=2)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            settings = Settings.from_env(env | {"UGC_PUBLIC_URL": server.url})  # as `ugc serve` derives it
            deal = a_deal(Api(client, settings))  # type: ignore[arg-type]
            text = f"crash {uuid.uuid4().hex}"
            body = {
                "service_id": deal.service["id"],
                "requirements": text,
                "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
                "selected_option_ids": [],
            }
            headers = deal.buyer["headers"] | {"Idempotency-Key": f"crash-{uuid.uuid4().hex}"}

            with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
                holder.execute("LOCK TABLE orders_events IN EXCLUSIVE MODE")  # appends wait (5 s at most)
                first: list[object] = []
                request = threading.Thread(target=lambda: first.append(_post(server.url, headers, body)), daemon=True)
                request.start()
                deadline = time.monotonic() + DEADLINE
                while not waiting_for_the_log_lock(watcher):
                    assert time.monotonic() < deadline, "the placing request never reached its append"
                    time.sleep(0.02)
                claimed = watcher.execute(
                    "SELECT created_at, status, appended FROM idempotency_keys WHERE key = %s",
                    (headers["Idempotency-Key"],),
                ).fetchone()
                assert claimed is not None and claimed[1:] == (None, None), claimed  # claimed, nothing stored
                for pid in processes.workers(server, 2, deadline):
                    processes.kill(pid)
                holder.rollback()
            request.join(30)
            assert first and isinstance(first[0], httpx.TransportError), first  # its worker died

            processes.workers(server, 2, time.monotonic() + DEADLINE)  # uvicorn started new ones
            server.wait_until_healthy(deadline=time.monotonic() + DEADLINE)
            retry = client.post("/api/v1/orders/", headers=headers, json=body)
            taken_over_at = time.time()
            assert retry.status_code == 201, retry.text
            assert "idempotent-replayed" not in retry.headers  # it ran the command: the first never did
            assert taken_over_at - claimed[0].timestamp() >= IN_FLIGHT  # not before the claim expired
            again = client.post("/api/v1/orders/", headers=headers, json=body)
            assert again.status_code == 201 and again.json() == retry.json(), again.text
            assert again.headers["idempotent-replayed"] == "true"
        assert [number for number, requirements in placed_in_log(url) if requirements == text] == [retry.json()["id"]]


def _post(base_url: str, headers: dict[str, str], body: dict[str, object]) -> object:
    try:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return client.post("/api/v1/orders/", headers=headers, json=body)
    except httpx.TransportError as error:
        return error
