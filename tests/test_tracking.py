"""Progress: a command waits until the read models have applied its events, and only that long."""

import asyncio
from collections.abc import Iterator

import pytest

from readmodels import tracking
from readmodels.migrations import migrate
from readmodels.tracking import Progress
from ugc.database import Database
from ugc.errors import Unavailable


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


def move(db: Database, position: int) -> None:
    with db.transaction(write=True) as cur:
        old = tracking.position(cur, "probe", "probed")
        tracking.advance(cur, "probed", ["probe"], old, position)


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
