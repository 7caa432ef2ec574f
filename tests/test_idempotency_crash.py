"""An `Idempotency-Key` claimed by a worker that died is settled by a retry after
`UGC_IDEMPOTENCY_IN_FLIGHT` seconds, not answered 409 "in flight" for the day: taken over if the
worker died before its command was stored, answered 409 "answer lost" (and never run again) if it
died right after the append, before the key recorded where.

Real processes on PostgreSQL: `ugc serve --workers 2`; the test holds the orders log's table lock so
the placing request claims its key and then waits to append; while it waits (or, for the second
test, once it appended and waits for the key's row, which the test locks), the workers are
SIGKILLed (the one holding the claim is among them), and uvicorn starts new ones.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.errors import message
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


def at_its_append(conn: psycopg.Connection[tuple[object, ...]], key: str) -> bool:
    """Whether the request of `key` recorded what it is about to append while a session waits for a
    lock on the orders log's table. Not the wait alone: a worker still starting (one that migrates, as
    one of other code does, takes the log's locks too) may be the one waiting, before the request has
    even claimed its key."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE NOT l.granted AND c.relname = 'orders_events') "
        "AND EXISTS (SELECT 1 FROM idempotency_keys WHERE key = %s AND intent IS NOT NULL)",
        (key,),
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
                while not at_its_append(watcher, headers["Idempotency-Key"]):
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


def waiting_for_a_lock(conn: psycopg.Connection[tuple[Any, ...]]) -> list[int]:
    """The sessions of this database waiting for a lock (the key's update, behind the test's row lock)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchall()
    return [int(pid) for (pid,) in rows]


def test_a_key_whose_worker_died_right_after_its_append_is_answered_lost_not_run_again(
    tmp_path: Path, processes: Processes
) -> None:
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path) | {"UGC_IDEMPOTENCY_IN_FLIGHT": str(IN_FLIGHT)}
        server = processes.serve(env, workers=2)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            settings = Settings.from_env(env | {"UGC_PUBLIC_URL": server.url})
            deal = a_deal(Api(client, settings))  # type: ignore[arg-type]
            text = f"crash after append {uuid.uuid4().hex}"
            body = {
                "service_id": deal.service["id"],
                "requirements": text,
                "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
                "selected_option_ids": [],
            }
            key = f"crash-{uuid.uuid4().hex}"
            headers = deal.buyer["headers"] | {"Idempotency-Key": key}

            with (
                psycopg.connect(url) as log_lock,
                psycopg.connect(url) as row_lock,
                psycopg.connect(url, autocommit=True) as watcher,
            ):
                log_lock.execute("LOCK TABLE orders_events IN EXCLUSIVE MODE")  # the append waits
                first: list[object] = []
                request = threading.Thread(target=lambda: first.append(_post(server.url, headers, body)), daemon=True)
                request.start()
                deadline = time.monotonic() + DEADLINE
                while not at_its_append(watcher, key):
                    assert time.monotonic() < deadline, "the placing request never reached its append"
                    time.sleep(0.02)
                # Its intent is recorded; from now on the key's row is the test's until the worker is dead.
                locked = row_lock.execute(
                    "SELECT intent, appended FROM idempotency_keys WHERE key = %s FOR UPDATE", (key,)
                ).fetchone()
                assert locked is not None and locked[0] and locked[1] is None, locked
                log_lock.rollback()  # the append commits; the key's `appended` update waits for the row
                while not (placed := [n for n, r in placed_in_log(url) if r == text]) or not waiting_for_a_lock(
                    watcher
                ):
                    assert time.monotonic() < deadline, "the append did not commit, or the key's update did not wait"
                    time.sleep(0.02)
                for pid in processes.workers(server, 2, deadline):
                    processes.kill(pid)
                for pid in waiting_for_a_lock(watcher):  # the dead worker's session, were it still there
                    watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
                row_lock.rollback()
                claimed = watcher.execute(
                    "SELECT created_at, status, appended FROM idempotency_keys WHERE key = %s", (key,)
                ).fetchone()
                assert claimed is not None and claimed[1:] == (None, None), claimed  # the crash window
            request.join(30)
            assert first and isinstance(first[0], httpx.TransportError), first  # its worker died

            processes.workers(server, 2, time.monotonic() + DEADLINE)
            server.wait_until_healthy(deadline=time.monotonic() + DEADLINE)
            retry = client.post("/api/v1/orders/", headers=headers, json=body)  # waits, then settles the claim
            while retry.status_code == 409 and retry.json()["error"] == message("idempotency_key_in_flight"):
                assert time.monotonic() < deadline + DEADLINE, retry.text
                retry = client.post("/api/v1/orders/", headers=headers, json=body)
            assert retry.status_code == 409, retry.text
            assert retry.json() == {"error": message("idempotency_key_answer_lost")}
            assert time.time() - claimed[0].timestamp() >= IN_FLIGHT  # not before the claim expired
            again = client.post("/api/v1/orders/", headers=headers, json=body)
            assert again.status_code == 409 and again.json() == retry.json(), again.text
            assert again.headers["idempotent-replayed"] == "true"
        assert [number for number, requirements in placed_in_log(url) if requirements == text] == placed


def _post(base_url: str, headers: dict[str, str], body: dict[str, object]) -> object:
    try:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return client.post("/api/v1/orders/", headers=headers, json=body)
    except httpx.TransportError as error:
        return error
