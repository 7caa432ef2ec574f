"""The blocking threads' bounded wait (ugc/platform/blocking.py), on real threads: work that finds none free
gives up before it starts, work after a stored command waits its turn, and a request that goes
away leaves no thread counted busy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from ugc.platform.blocking import BlockingThreads, Busy, turn

WAIT = 0.2


def with_one_busy_thread(body: Callable[[BlockingThreads, threading.Event], Awaitable[None]]) -> None:
    """Run `body` with one thread, busy until the event is set."""

    async def run() -> None:
        threads, busy = BlockingThreads(1, WAIT), threading.Event()
        holding = asyncio.create_task(threads.run(lambda: busy.wait(30)))
        await asyncio.sleep(0)
        try:
            await body(threads, busy)
        finally:
            busy.set()
            await holding
            threads.shutdown()

    asyncio.run(run())


def test_work_that_finds_no_thread_free_in_time_is_unavailable_and_never_runs() -> None:
    ran: list[int] = []

    async def body(threads: BlockingThreads, busy: threading.Event) -> None:
        with pytest.raises(Busy):
            await threads.run(lambda: ran.append(1))
        busy.set()
        await asyncio.sleep(WAIT)

    with_one_busy_thread(body)
    assert ran == []


def test_patient_work_waits_for_the_thread_past_the_bound() -> None:
    async def body(threads: BlockingThreads, busy: threading.Event) -> None:
        asyncio.get_running_loop().call_later(3 * WAIT, busy.set)
        assert await threads.run(lambda: "done", patient=True) == "done"

    with_one_busy_thread(body)


def test_a_cancelled_caller_frees_its_thread_once_the_work_ends() -> None:
    async def body() -> None:
        threads, busy = BlockingThreads(1, 5 * WAIT), threading.Event()
        gone = asyncio.create_task(threads.run(lambda: busy.wait(30)))
        await asyncio.sleep(WAIT)  # running on the thread
        gone.cancel()
        with pytest.raises(Busy):  # the work still holds it
            await threads.run(lambda: "too soon")
        busy.set()
        assert await threads.run(lambda: "next") == "next"
        threads.shutdown()

    asyncio.run(body())


def test_a_turn_not_had_in_time_is_busy() -> None:
    async def body() -> None:
        line = asyncio.Semaphore(1)
        async with turn(line, WAIT):
            with pytest.raises(Busy):
                async with turn(line, WAIT):
                    pass
        async with turn(line, WAIT):
            assert line.locked()

    asyncio.run(body())
