"""Progress: a command waits until the read models have applied its events, and only that long."""

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from readmodels import tracking
from readmodels import waiting as waiting_module
from readmodels.waiting import Progress
from ugc.errors import Unavailable
from ugc.platform.database import Database
from ugc.wiring import migrate


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database)
    with database.transaction(write=True) as cur:
        tracking.register(cur, "probe", "probed", read_model=True)
    yield database
    with database.transaction(write=True) as cur:
        cur.execute("DELETE FROM projection_tracking WHERE projection = %s", ("probe",))
    database.close()


def move(db: Database, position: int, *, announce: bool = False) -> None:
    with db.transaction(write=True) as cur:
        old = tracking.position(cur, "probe", "probed")
        tracking.advance(cur, "probed", ["probe"], old, position)
        if announce:
            tracking.announce(cur)


def test_each_waiter_is_woken_when_its_own_position_is_applied(db: Database) -> None:
    async def scenario() -> None:
        progress = Progress()
        near = asyncio.ensure_future(progress.wait_async(db, {"probed": 1}, 5.0))
        far = asyncio.ensure_future(progress.wait_async(db, {"probed": 3}, 5.0))
        await asyncio.sleep(0.05)
        assert not near.done() and not far.done()
        move(db, 1)
        await asyncio.wait_for(near, 2.0)
        await asyncio.sleep(0.05)
        assert not far.done()
        move(db, 3)
        await asyncio.wait_for(far, 2.0)
        # Already applied: answered from the last read, at once.
        await asyncio.wait_for(progress.wait_async(db, {"probed": 2}, 5.0), 0.01)

    asyncio.run(scenario())


def test_a_position_never_applied_is_a_503_after_the_timeout_for_threads_and_coroutines(db: Database) -> None:
    progress = Progress()
    with pytest.raises(Unavailable):
        progress.wait(db, {"probed": 10}, 0.1)
    with pytest.raises(Unavailable):
        asyncio.run(progress.wait_async(db, {"probed": 10}, 0.1))
    move(db, 10)
    progress.wait(db, {"probed": 10}, 2.0)


@contextmanager
def listening_waiter(
    db: Database, monkeypatch: pytest.MonkeyPatch, required: dict[str, int]
) -> Iterator[tuple[Progress, Future[None]]]:
    """A waiter for `required` whose watcher listens and has read the positions once; from then on
    only a NOTIFY wakes the watcher (it would read again unprompted after 600 s)."""
    if db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite the watcher reads every few milliseconds")
    monkeypatch.setattr(waiting_module, "TOLD_WATCH_INTERVAL", 600.0)
    progress = Progress()
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(progress.wait, db, required, 30.0)
        until(lambda: db in progress._heard and db in progress._reached, "the watcher never listened")
        time.sleep(0.1)
        assert not waiting.done()
        yield progress, waiting


def until(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def test_a_runner_of_another_process_is_heard_as_soon_as_it_commits(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with listening_waiter(db, monkeypatch, {"probed": 1}) as (_, waiting):
        move(db, 1, announce=True)
        waiting.result(timeout=10)  # long before the watcher would have read again unprompted


def test_the_positions_a_runners_notify_carries_wake_waiters_without_a_read(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with listening_waiter(db, monkeypatch, {"probed": 2}) as (progress, waiting):
        # The NOTIFY alone says position 2 is applied: the stored position (still 0) is not read again.
        with db.transaction(write=True) as cur:
            tracking.announce(cur, tracking.Advanced("probed", ("probe",), 2))
        waiting.result(timeout=10)
        # One of some other application, or of a projection never read, has everything read again.
        move(db, 3)
        with db.transaction(write=True) as cur:
            tracking.announce(cur, tracking.Advanced("probed", ("unknown",), 9))
        progress.wait(db, {"probed": 3}, 10.0)


def test_a_waiter_is_woken_by_a_notify_once_a_lost_listen_is_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LISTEN is the process's one connection, shared with other subscribers: cut, it is made
    again, and the watcher hears every runner's NOTIFY as before."""
    with listening_waiter(db, monkeypatch, {"probed": 1}) as (progress, waiting):
        with db.read() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE %s",
                ("%LISTEN %",),
            )
        until(lambda: db not in progress._heard, "the lost LISTEN went unnoticed")
        until(lambda: db in progress._heard, "the watcher never listened again")  # after a second
        time.sleep(0.1)
        assert not waiting.done()
        with db.transaction(write=True) as cur:
            tracking.announce(cur, tracking.Advanced("probed", ("probe",), 1))
        waiting.result(timeout=10)
