"""What clients see while the database behind a running app misbehaves: PostgreSQL refuses writes
(a standby a failover has not promoted yet), its sessions are all cut at once, or a lock holds an
event log; another process holds SQLite's write lock. Never a 500, never a request that hangs for
as long as the fault lasts, and /readyz says what is wrong.

In-process apps on the test's database; each fault is undone before the test ends, so the module's
other tests find the database as it was.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit
from uuid import uuid4

import httpx2
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from api.app import build_app
from api.errors import message
from api.readiness import READY_DEADLINE
from tests.backends import DATA_KEY, environment, fresh_database
from tests.conftest import Api, checked_client
from tests.orders_world import a_deal
from ugc.clock import MovableClock
from ugc.config import Settings, sqlite_path
from ugc.platform import metrics
from ugc.platform.chain_postgres import ChainedPostgresRecorder
from ugc.platform.database import STORE_LOCK_TIMEOUT, Database
from ugc.platform.outages import database_away
from ugc.platform.store import EventStores
from ugc.wiring import runtime

T = TypeVar("T")
UNAVAILABLE = {"detail": message("unavailable")}


@pytest.fixture
def postgres(backend: str, settings: Settings) -> str:
    if backend != "postgres":
        pytest.skip("a PostgreSQL fault")
    return settings.database_url


def terminate_sessions(url: str) -> None:
    """End every session of the database but this one, as a failover or a restart does."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@contextmanager
def read_only(url: str) -> Iterator[None]:
    """The database refuses writes in every new session, and the old ones are gone."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    terminate_sessions(url)
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True, options="-c default_transaction_read_only=off") as admin:
            admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        terminate_sessions(url)


@contextmanager
def locked(url: str, table: str, release_after: float) -> Iterator[threading.Event]:
    """`table` locked against any read, as an operator's `LOCK TABLE` or an `ALTER TABLE` does; let go
    after `release_after` seconds even if the block has not ended (so a request that waits for it
    ends too). The event is set once it was let go."""
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    releasing = threading.Lock()
    let_go = threading.Event()

    def release() -> None:
        with releasing:
            if not holder.closed:
                holder.execute("ROLLBACK")
                holder.close()
                let_go.set()

    timer = threading.Timer(release_after, release)
    timer.start()
    try:
        yield let_go
    finally:
        timer.cancel()
        release()


def eventually(attempt: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        outcome = attempt()
        if done(outcome) or time.monotonic() > deadline:
            return outcome
        time.sleep(0.1)


def test_a_database_that_refuses_writes_answers_503_and_readyz_says_so(postgres: str, settings: Settings) -> None:
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        user = api.verified_user()
        credentials = {"username": user["username"], "password": user["password"]}

        def edit() -> httpx2.Response:
            return client.patch("/api/v1/users/me/", headers=user["headers"], json={"bio": "обновлено"})

        with read_only(postgres):
            # Dead sessions are found first (503 "unavailable" meanwhile).
            ready = eventually(
                lambda: client.get("/readyz"),
                lambda r: r.status_code == 200 and r.json()["checks"]["database"] == "read-only",
            )
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded" and ready.json()["checks"]["database"] == "read-only"
            # The first attempts may meet a session the termination left dead: 503 too.
            for _ in range(4):
                for answer in (edit(), client.post("/api/auth/token/", json=credentials)):
                    assert answer.status_code == 503, answer.text
                    assert answer.json() == UNAVAILABLE
            assert client.get("/api/v1/users/me/", headers=user["headers"]).status_code == 200

        assert eventually(edit, lambda r: r.status_code == 200).status_code == 200
        ready = eventually(lambda: client.get("/readyz"), lambda r: r.json()["status"] == "ok")
        assert ready.json()["checks"]["parked_events"] == "ok", ready.text


def test_the_event_stores_reads_go_on_at_once_after_their_sessions_were_terminated(postgres: str) -> None:
    """A blip (every session terminated) costs a read one retry on a new connection, not a failure:
    a projection runner that failed instead waited a second per dead connection, and the commands
    waiting for it answered 503."""
    stores = EventStores(postgres, data_key=DATA_KEY)
    try:
        orders = cast(ChainedPostgresRecorder, stores.orders.recorder)
        catalog = cast(ChainedPostgresRecorder, stores.catalog.recorder)

        def read_each_log() -> None:
            stores.heads()
            orders.select_notifications(start=0, limit=10)
            catalog.select_streams({uuid4(): 0})

        read_each_log()  # every pool holds a connection now
        terminate_sessions(postgres)
        started = time.monotonic()
        read_each_log()
        assert time.monotonic() - started < 1.0
    finally:
        stores.close()


def test_an_append_goes_on_at_once_after_its_sessions_were_terminated(postgres: str) -> None:
    """An append whose pooled connection was found dead before its COMMIT was sent stored nothing:
    it is appended again on another connection, once; it failed, and its caller answered 503."""
    stores = EventStores(postgres, data_key=DATA_KEY)
    try:
        recorder = cast(ChainedPostgresRecorder, stores.messaging.recorder)

        def append() -> Sequence[int] | None:
            return recorder.insert_events([StoredEvent(uuid4(), 1, "tests:Appended", b"{}")])

        append()  # the pool holds a connection now
        terminate_sessions(postgres)
        (stored,) = append() or []
        assert [notification.id for notification in recorder.select_notifications(start=stored, limit=5)] == [stored]
    finally:
        stores.close()


def test_the_read_databases_reads_and_sequences_go_on_at_once_after_their_sessions_were_terminated(
    postgres: str,
) -> None:
    """Every pooled connection of the read database dead at once (several in each pool): a read and
    a sequence's next value each meet one, and are done on a live one; the first dead connection
    found has its pool's others checked, so no attempt meets a second. A chat frame sent just after
    a blip met a dead connection for its message id, then another for its append: two frames
    answered "try again"."""
    db = Database(postgres)

    async def reads_after_a_blip() -> None:
        def sleepy(_: int) -> list[list[dict[str, Any]]]:
            return db.snapshot(("SELECT pg_sleep(0.05)", ()))

        with ThreadPoolExecutor(3) as pool:  # three connections in the blocking pool, three async
            list(pool.map(sleepy, range(3)))
        await asyncio.gather(*(db.fetch_async("SELECT pg_sleep(0.05)") for _ in range(3)))
        terminate_sessions(postgres)
        first, second = db.next_numbers("message", 2)
        assert second > first
        assert db.snapshot(("SELECT 1 AS one", ())) == [[{"one": 1}]]
        assert await db.fetch_async("SELECT 2 AS two") == [{"two": 2}]
        assert await db.snapshot_async(("SELECT 3 AS three", ())) == [[{"three": 3}]]
        await db.aclose()

    try:
        asyncio.run(reads_after_a_blip())
    finally:
        db.close()


def test_a_command_behind_a_locked_log_answers_503_rather_than_wait_for_the_lock(
    postgres: str, settings: Settings
) -> None:
    """A command's load waits for a lock on its log at most STORE_LOCK_TIMEOUT seconds, whether it
    loads through the library's repository (an edit of the profile) or a group's read of its orders
    (an order placed): it answers 503 while the lock is still held, not retried until it is let go.

    Told by order, not by the clock: a lock held six times the bound outlasts a wait stretched by a
    loaded machine (one CI run timed a single 503 at 10.01 s, twice the bound), not a wait retried."""
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = {"service_id": deal.service["id"], "requirements": "Обзор", "delivery_date": "2030-01-10"}
        cases = [
            ("accounts_events", "patch", "/api/v1/users/me/", {"bio": "обновлено"}),
            ("orders_events", "post", "/api/v1/orders/", order),
        ]
        for table, method, path, body in cases:
            with locked(postgres, table, release_after=6 * STORE_LOCK_TIMEOUT) as let_go:
                answer = client.request(method, path, headers=deal.buyer["headers"], json=body)
                answered_while_locked = not let_go.is_set()
            assert answer.status_code == 503, (table, answer.text)
            assert answer.json() == UNAVAILABLE
            assert answered_while_locked, table
            again = client.request(method, path, headers=deal.buyer["headers"], json=body)
            assert again.status_code in (200, 201), again.text


@pytest.mark.parametrize("log", [None, "orders"])
def test_readyz_tells_while_another_process_holds_the_sqlite_write_lock(
    backend: str, settings: Settings, log: str | None
) -> None:
    """Every write waits for the lock, then answers 503; /readyz said "ok" until the leases lapsed.
    An event store's file too (`log`): with the orders log's lock held elsewhere, every order command
    answered 503 while /readyz, which took only the read side's lock, said "ok"."""
    if backend != "sqlite":
        pytest.skip("SQLite's file lock")
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        read_side = sqlite_path(settings.database_url)
        held = read_side if log is None else read_side.with_name(f"{read_side.stem}.{log}{read_side.suffix}")
        holder = sqlite3.connect(held, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            ready = client.get("/readyz")
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["database"] == "write lock held elsewhere"
        assert client.get("/readyz").json()["status"] == "ok"


@contextmanager
def small_file_system(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `mount_point`: a real file system that runs out of space, where
    the kernel itself refuses a write (ENOSPC) and reports no space left (statvfs). Mounting needs
    CAP_SYS_ADMIN; without it the test is skipped rather than the fault faked."""
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], check=False)
    if mounted.returncode != 0:
        pytest.skip("mounting a small file system needs CAP_SYS_ADMIN")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory: Path) -> Path:
    """Write a ballast file into `directory` until its file system refuses more (ENOSPC)."""
    ballast = directory / "ballast"
    # Unbuffered: a buffered file keeps the bytes the full disk refused and fails again on close.
    with ballast.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return ballast


def test_readyz_tells_when_the_sqlite_disk_is_full_or_a_file_read_only(tmp_path: Path) -> None:
    """/readyz said "ok" on a full disk until the leases lapsed: its probe takes the write lock and
    lets it go, which needs no space. The database lives on a small tmpfs (see `small_file_system`),
    filled to the last byte by a ballast file; then, with space again, a database file is made
    immutable (`chattr +i`: refused to every writer, root too, as a file system remounted read-only
    refuses them). Either way reads stay consistent and writes cannot be stored: "degraded"."""
    with small_file_system(tmp_path / "disk", "16m") as disk, fresh_database("sqlite", disk, migrated=True) as url:
        settings = Settings.from_env(environment("sqlite", url, tmp_path / "var"))
        app = build_app(lambda: runtime(settings, clock=MovableClock()))
        with checked_client(app) as client:
            assert client.get("/readyz").json()["status"] == "ok"
            ballast = fill(disk)
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["database"] == "disk full"
            ballast.unlink()
            assert eventually(lambda: client.get("/readyz"), lambda r: r.json()["status"] == "ok").status_code == 200

            orders = disk / "ugc.orders.sqlite3"
            subprocess.run(["chattr", "+i", str(orders)], check=True)
            try:
                ready = client.get("/readyz")
            finally:
                subprocess.run(["chattr", "-i", str(orders)], check=True)
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["database"] == "read-only"
            assert client.get("/readyz").json()["status"] == "ok"


def _projection_failures() -> float:
    return sum(
        sample.value
        for family in metrics.PROJECTION_FAILURES.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_a_projection_meeting_a_database_that_refuses_writes_counts_no_failure_and_parks_nothing(
    postgres: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch that meets a read-only database is an outage, as a lost connection is: not a failure of
    its events (one of which would be parked at the instant the database took writes again), and
    logged as a warning without a traceback."""
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        user = api.verified_user()
        failures = _projection_failures()
        # The users' table kept from writes (reads go on): the edit is stored, its projection waits.
        holder = psycopg.connect(postgres, autocommit=True)
        try:
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE users IN EXCLUSIVE MODE")
            edit = client.patch("/api/v1/users/me/", headers=user["headers"], json={"bio": "во время отказа"})
            assert edit.status_code == 503, edit.text
            with caplog.at_level(logging.WARNING, logger="projections.runner"), read_only(postgres):
                time.sleep(4.0)  # the runner tries its batch again, longer than its leases outlive renewals
        finally:
            holder.close()
        assert any("read-only" in r.getMessage() for r in caplog.records), caplog.text
        caught_up_without_failure(client, user, "во время отказа", failures, caplog)


def caught_up_without_failure(
    client: Any, user: dict[str, Any], bio: str, failures: float, caplog: pytest.LogCaptureFixture
) -> None:
    """After an outage the projections met: no failure counted, nothing logged at ERROR, the edit of
    `bio` made during it shown once it is over, and nothing parked."""
    assert _projection_failures() == failures
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    shown = eventually(  # the runner retries 1 s after meeting the outage: 10 s ran out once on a loaded CI
        lambda: client.get("/api/v1/users/me/", headers=user["headers"]),
        lambda r: r.json().get("bio") == bio,
        timeout=30.0,
    )
    assert shown.json()["bio"] == bio
    ready = eventually(lambda: client.get("/readyz"), lambda r: r.json()["status"] == "ok")
    assert ready.json()["checks"]["parked_events"] == "ok", ready.text


def test_a_full_or_read_only_sqlite_file_is_an_outage_and_a_wrong_statement_is_not(tmp_path: Path) -> None:
    """SQLite's own errors, raised for real: a file grown to its page limit (`PRAGMA max_page_count`:
    SQLite's SQLITE_FULL, what a full disk raises too), a file opened read-only (SQLITE_READONLY, what
    a file or file system made read-only raises). A wrong statement raises the same class, and stays a
    fault of the work that met it."""
    path = tmp_path / "outages.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("CREATE TABLE t (x BLOB)")
        (pages,) = writer.execute("PRAGMA page_count").fetchone()
        writer.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(sqlite3.OperationalError) as full:
            writer.execute("INSERT INTO t VALUES (zeroblob(100000))")
        with pytest.raises(sqlite3.OperationalError) as wrong:
            writer.execute("SELECT nothing FROM t")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as reader:
        with pytest.raises(sqlite3.OperationalError) as read_only:
            reader.execute("INSERT INTO t VALUES (1)")
    assert full.value.sqlite_errorcode == sqlite3.SQLITE_FULL
    assert read_only.value.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY
    assert database_away(full.value) and database_away(read_only.value)
    assert not database_away(wrong.value)


def test_a_projection_behind_the_sqlite_write_lock_held_elsewhere_counts_no_failure_and_parks_nothing(
    backend: str, settings: Settings, caplog: pytest.LogCaptureFixture, short_busy_timeout: float
) -> None:
    """Another process holding the read database's write lock past the busy timeout (an operator's
    `sqlite3` shell in BEGIN IMMEDIATE, a long `ugc` command, a backup) is an outage, as PostgreSQL
    refusing writes is: the batch that meets "database is locked" is not its events' failure (counted,
    a traceback logged, and after a few an event parked), but a warning, and the projection catches up
    once the lock is let go."""
    if backend != "sqlite":
        pytest.skip("SQLite's file lock")
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        user = api.verified_user()
        failures = _projection_failures()
        holder = sqlite3.connect(sqlite_path(settings.database_url), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with caplog.at_level(logging.WARNING, logger="projections.runner"):
                # Stored in the accounts' own file; its projection waits for the read database's lock.
                edit = client.patch("/api/v1/users/me/", headers=user["headers"], json={"bio": "под замком"})
                assert edit.status_code == 503, edit.text
                met = eventually(  # a batch waits out the busy timeout, then meets the lock
                    lambda: [
                        r
                        for r in caplog.records
                        if r.name == "projections.runner" and "database is locked" in r.getMessage()
                    ],
                    bool,
                    timeout=short_busy_timeout + 10.0,
                )
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert met, caplog.text
        caught_up_without_failure(client, user, "под замком", failures, caplog)


def test_readyz_answers_within_a_second_while_an_event_log_is_locked(postgres: str, settings: Settings) -> None:
    """Probes give up after about a second: a check that waits for a lock (each of its statements up to
    STORE_LOCK_TIMEOUT) answers 503 naming what did not complete, and probes in a row share the one
    check under way rather than start one each."""
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        assert client.get("/readyz").status_code == 200
        with locked(postgres, "orders_events", release_after=4 * STORE_LOCK_TIMEOUT):
            for _ in range(3):
                started = time.monotonic()
                answer = client.get("/readyz")
                waited = time.monotonic() - started
                assert waited < 1.0, waited
                assert answer.status_code == 503, answer.text
                assert answer.json()["status"] == "unavailable"
                assert answer.json()["checks"]["database"] == "ok"
                assert answer.json()["checks"]["projections"] == f"no answer within {READY_DEADLINE:g} s"
        ready = eventually(
            lambda: client.get("/readyz"), lambda r: r.status_code == 200, timeout=4 * STORE_LOCK_TIMEOUT
        )
        assert ready.json()["status"] == "ok", ready.text


def test_a_chat_frame_while_the_database_refuses_writes_gets_an_error_frame_and_the_socket_stays(
    postgres: str, settings: Settings
) -> None:
    """The sender is told to try again (an error frame), as REST answers 503, and the socket stays: it
    closed 1011 ("an unexpected server error", an ERROR traceback) while writes were refused, and 1013
    when the frame met a session the server had ended. After a blip the first frame is sent: its
    dead connections are found and replaced on the way (one CI run had two frames answered "try
    again", one per pool)."""
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        started = client.post(
            "/api/v1/conversations/", headers=deal.buyer["headers"], json={"recipient_id": deal.creator["id"]}
        )
        assert started.status_code in (200, 201), started.text
        url = f"/ws/conversations/{started.json()['id']}/?token={deal.buyer['access']}"
        with client.websocket_connect(url) as ws:
            with read_only(postgres):
                # Dead sessions are found first: the frames then meet the refusal itself.
                eventually(lambda: client.get("/readyz"), lambda r: r.json()["checks"]["database"] == "read-only")
                for _ in range(3):
                    ws.send_text('{"message": "во время отказа"}')
                    assert ws.receive_json() == {"error": message("unavailable")}

            def send() -> Any:
                ws.send_text('{"message": "после"}')
                return ws.receive_json()

            sent = eventually(send, lambda frame: frame.get("message") == "после")
            assert sent.get("message") == "после", sent
            terminate_sessions(postgres)  # a blip mid-socket: the frame meets dead sessions, and is sent
            ws.send_text('{"message": "после обрыва"}')
            assert ws.receive_json().get("message") == "после обрыва"
            ws.close()
