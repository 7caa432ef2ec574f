"""SharedRead: one read per burst, and never a read that began before its caller asked."""

import asyncio

import pytest

from api.shared_read import SharedRead


class Source:
    """A value the test moves; each read takes one loop turn per `turns` and records what it saw."""

    def __init__(self, turns: int = 3) -> None:
        self.value = 0
        self.reads = 0
        self.turns = turns
        self.fail: Exception | None = None

    async def read(self) -> int:
        self.reads += 1
        seen = self.value  # the read's snapshot is taken when it begins
        for _ in range(self.turns):
            await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return seen


def test_a_burst_of_callers_shares_one_read() -> None:
    async def scenario() -> None:
        source = Source()
        shared = SharedRead(source.read)
        assert await asyncio.gather(*(shared.get() for _ in range(10))) == [0] * 10
        assert source.reads == 1

    asyncio.run(scenario())


def test_a_caller_arriving_during_a_read_gets_the_next_one_which_sees_what_came_before_it() -> None:
    async def scenario() -> None:
        source = Source()
        shared = SharedRead(source.read)
        first = asyncio.ensure_future(shared.get())
        while source.reads == 0:  # until the first read has begun and taken its snapshot
            await asyncio.sleep(0)
        source.value = 1  # a write committed before the next callers ask
        later = [asyncio.ensure_future(shared.get()) for _ in range(5)]
        assert await first == 0
        assert await asyncio.gather(*later) == [1] * 5
        assert source.reads == 2

    asyncio.run(scenario())


def test_a_failed_read_fails_every_caller_and_the_next_read_runs_again() -> None:
    async def scenario() -> None:
        source = Source()
        source.fail = ConnectionError("database gone")
        shared = SharedRead(source.read)
        outcomes = await asyncio.gather(*(shared.get() for _ in range(3)), return_exceptions=True)
        assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
        source.fail = None
        source.value = 7
        assert await shared.get() == 7

    asyncio.run(scenario())


def test_a_caller_that_goes_away_does_not_cancel_the_read_of_the_others() -> None:
    async def scenario() -> None:
        source = Source()
        shared = SharedRead(source.read)
        leaving = asyncio.ensure_future(shared.get())
        staying = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert await staying == 0

    asyncio.run(scenario())


def test_it_is_idle_once_every_caller_is_served() -> None:
    async def scenario() -> None:
        shared = SharedRead(Source().read)
        assert shared.idle
        pending = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0)
        assert not shared.idle
        await pending
        assert shared.idle

    asyncio.run(scenario())
