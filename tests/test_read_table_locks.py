"""What a lock held on a read table does to the requests that read it (PostgreSQL): an operator's
`LOCK TABLE`, an `ALTER TABLE` or a `VACUUM FULL` of `orders` held every list of orders, and the
connection and thread under it, for as long as the lock lasted; enough of them and every request
hung, and a stop of `ugc serve` with them. Each waits UGC_DB_LOCK_TIMEOUT seconds at most and answers
503 (a socket closes 1013), while what must wait for locks on the read side still waits: a
migration behind another one, a blue/green switch behind readers (tests/test_bluegreen.py).

In-process apps on the test's database, with the bound set to BOUND (the default, READ_LOCK_TIMEOUT,
was waited out a dozen times here: half a minute); each lock is let go before the test ends.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from api.app import build_app
from tests.backends import environment, fresh_database, postgres_available
from tests.conftest import Api, checked_client
from tests.orders_world import a_deal
from tests.servers import start_server
from tests.test_database_outages import UNAVAILABLE, _projection_failures, eventually, locked
from ugc.clock import MovableClock
from ugc.config import DEFAULT_STOP_GRACE as GRACEFUL_SHUTDOWN
from ugc.config import READ_LOCK_TIMEOUT, ConfigError, Settings, read_lock_timeout
from ugc.platform.database import Database
from ugc.wiring import migrate, runtime

TRY_AGAIN_LATER = 1013
BOUND = 1.0  # seconds: UGC_DB_LOCK_TIMEOUT of the in-process apps and databases here
SLACK = 2 * READ_LOCK_TIMEOUT  # a bound met answers within it, however loaded the machine
HELD = BOUND + 2 * SLACK  # a lock a test holds lets go after this, so what ignores the bound still ends


@pytest.fixture(autouse=True)
def bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read sessions opened in this process wait BOUND seconds for a lock (read when they open)."""
    monkeypatch.setenv("UGC_DB_LOCK_TIMEOUT", f"{BOUND:g}")


@pytest.fixture
def postgres(backend: str, settings: Settings) -> str:
    if backend != "postgres":
        pytest.skip("a PostgreSQL lock")
    return settings.database_url


def test_lists_behind_a_locked_read_table_answer_503_rather_than_wait_for_the_lock(
    postgres: str, settings: Settings
) -> None:
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        headers = deal.buyer["headers"]
        for table, path in [
            ("notifications", "/api/v1/notifications/"),
            ("orders", "/api/v1/orders/"),
            ("services", "/api/v1/services/"),
        ]:
            with locked(postgres, table, release_after=HELD):
                started = time.monotonic()
                answer = client.get(path, headers=headers)
                waited = time.monotonic() - started
            assert answer.status_code == 503, (table, answer.text)
            assert answer.json() == UNAVAILABLE
            assert waited < BOUND + SLACK, (table, waited)
            assert client.get(path, headers=headers).status_code == 200


@pytest.mark.timeout(120)  # without a bound, the socket stays open once the lock goes
def test_a_notification_socket_behind_a_locked_table_closes_1013(postgres: str, settings: Settings) -> None:
    """Whether its first read comes before the handshake is answered (the latest notification, no
    `since=`) or after (what was stored since the first, `since=0`)."""
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        user = api.verified_user()
        for query in ["", "&since=0"]:
            url = f"/ws/notifications/?token={user['access']}{query}"
            with locked(postgres, "notifications", release_after=HELD):
                started = time.monotonic()
                with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
                    ws.receive_text()
                waited = time.monotonic() - started
            assert closed.value.code == TRY_AGAIN_LATER, query
            assert waited < BOUND + SLACK, (query, waited)


def test_a_projection_behind_a_locked_read_table_backs_off_as_from_an_outage(
    postgres: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Its batch gives the wait up after the bound (it waited as long as the lock lasted), as
    an outage: no failure counted against its events, no traceback; the order is shown once the lock
    is gone."""
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    failures = _projection_failures()
    with caplog.at_level(logging.WARNING, logger="projections.runner"), checked_client(app) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = {"service_id": deal.service["id"], "requirements": "Обзор", "delivery_date": "2030-01-10"}
        with locked(postgres, "orders", release_after=HELD):
            placed = client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=order)
            assert placed.status_code == 503, placed.text  # its read model could not be written in time
            met = eventually(lambda: caplog.text, lambda text: "lock timeout" in text, timeout=BOUND + SLACK)
            assert "lock timeout" in met, met
        shown = eventually(
            lambda: client.get("/api/v1/orders/", headers=deal.buyer["headers"]), lambda r: r.json()["count"] == 1
        )
        assert shown.json()["count"] == 1, shown.text
    assert _projection_failures() == failures
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


@contextmanager
def migrating_behind(db: Database, held: AbstractContextManager[object]) -> Iterator[threading.Event]:
    """`ugc migrate` started while `held` is; the event is set once it ended, and it must have ended
    well (checked after the block)."""
    ended = threading.Event()
    failed: list[BaseException] = []

    def migration() -> None:
        try:
            migrate(db)
        except BaseException as error:
            failed.append(error)
        finally:
            ended.set()

    waiting = threading.Thread(target=migration)
    with held:
        waiting.start()
        yield ended
    assert ended.wait(30.0)
    waiting.join()
    assert failed == []


def test_a_migration_still_waits_past_the_bound_for_another_one(postgres: str) -> None:
    """`ugc migrate` behind a migration that takes longer than the bound (its advisory lock) waits for
    it and then migrates, rather than fail."""
    db = Database(postgres)
    try:
        with migrating_behind(db, db.exclusive_lock("migrate")) as ended:
            assert not ended.wait(BOUND + 1.0)
    finally:
        db.close()


def test_a_migration_still_waits_past_the_bound_for_a_table_held_by_someone_else(postgres: str) -> None:
    """An operator's `ALTER TABLE` of a read table the migration reads: a start waits for it rather
    than fail (and a deployment's processes retry their starts)."""
    db = Database(postgres)
    try:
        with migrating_behind(db, locked(postgres, "notifications", release_after=BOUND + 2.0)) as ended:
            assert not ended.wait(BOUND + 1.0)
    finally:
        db.close()


def test_a_vacuum_still_waits_past_the_bound_for_a_table_held_by_someone_else(postgres: str) -> None:
    """`ugc users erase` vacuums the erased person's old rows away: behind another VACUUM or an ALTER of
    the table it waits, rather than fail; and its connection goes back to the pool with the bound."""
    db = Database(postgres)
    try:
        with locked(postgres, "users", release_after=BOUND + 2.0):
            started = time.monotonic()
            db.vacuum("users")
            assert time.monotonic() - started > BOUND
        with db.read() as cur:
            assert cur.execute("SHOW lock_timeout").fetchone() == {"lock_timeout": f"{BOUND:g}s"}
    finally:
        db.close()


def test_a_stop_is_not_held_by_a_request_behind_a_locked_read_table(tmp_path: Path) -> None:
    """`ugc serve` stopped while a list waits behind a lock: the list answers 503 at the bound and the
    process exits then. It waited for the lock: the stop gave the request up after GRACEFUL_SHUTDOWN,
    and then still waited for it, as long as the lock lasted."""
    if not postgres_available():
        pytest.skip("UGC_TEST_DATABASE_URL is not set to PostgreSQL")
    held = GRACEFUL_SHUTDOWN + 2 * SLACK
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        env = environment("postgres", url, tmp_path)
        with start_server(env, log_dir=tmp_path / "logs") as server, locked(url, "services", release_after=held):
            answers: list[httpx.Response] = []
            reading = threading.Thread(
                target=lambda: answers.append(httpx.get(f"{server.url}/api/v1/services/", timeout=2 * held))
            )
            reading.start()
            time.sleep(1.0)  # the list waits for the lock
            stopping = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            status = server.process.wait(held)
            stopped = time.monotonic() - stopping
            reading.join()
        assert status == 0, server.log_tail()
        assert stopped < READ_LOCK_TIMEOUT + SLACK, stopped
        assert answers[0].status_code == 503, answers[0].text
        assert answers[0].json() == UNAVAILABLE


def test_the_bound_is_ugc_db_lock_timeout(postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_lock_timeout({}) == READ_LOCK_TIMEOUT
    with pytest.raises(ConfigError, match="UGC_DB_LOCK_TIMEOUT must be a positive number of seconds"):
        read_lock_timeout({"UGC_DB_LOCK_TIMEOUT": "0"})
    monkeypatch.setenv("UGC_DB_LOCK_TIMEOUT", "2.5")
    db = Database(postgres)
    try:
        with db.read() as cur:
            assert cur.execute("SHOW lock_timeout").fetchone() == {"lock_timeout": "2500ms"}
    finally:
        db.close()
