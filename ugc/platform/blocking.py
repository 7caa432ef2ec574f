"""The threads that run a process's blocking work (the event store, the database), entered within a
bounded wait.

A `ThreadPoolExecutor` queues what it cannot start without bound: with the database slow (a lock, its
pool exhausted), every request waited in that queue for as long as the slowness lasted, whatever
their number (500 at once behind a 20 s lock on `users`: p50 20 s, bench/RESULTS.md "overload"),
each one keeping its connection and memory meanwhile, and a client that gave up left its work queued.
Here work that finds every thread busy waits at most `wait` seconds for one, then gives up before
it started: `Busy`, which the API answers 503 with `Retry-After`, for the client to retry at once.
The API's blocking work runs here (`api.services.Services.run`).

SQLite's reads for coroutines (`ugc.platform.database.Database`: SQLite has no asyncio driver) go
through `AgedLine` instead: those reads are short or bounded themselves (a page's statements at
UGC_DB_READ_TIMEOUT, the others lone keyed reads; in WAL mode a reader waits for no writer), so a
thread always comes free soon, and work that waited in line too long is turned away when its turn
comes, which costs what `asyncio.to_thread` does. Timing the
wait on the loop, as `BlockingThreads` does, cost a timer and a semaphore's wake-ups for every
read that found the threads busy, the usual case with more requests than threads: 50-60 µs a read
against 35-45 (16 coroutines on 4 threads), a quarter of a list's throughput on SQLite.

Turns of the event loop's own lines (a password hash: `turn`) are bounded the same way: 300
sign-ins at once waited up to 23 s for the two hashes a worker computes at a time.

Work a request does after its command was stored (`patient`) waits as long as it takes: a 503 then
would tell the client that a command that took effect did not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """No thread (or turn) came free within the wait: the work did not start, and may be retried."""


class BlockingThreads:
    def __init__(self, threads: int, wait: float, name: str = "ugc-blocking") -> None:
        self.wait = wait
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._free = asyncio.Semaphore(threads)  # threads not running work, so the executor never queues

    async def run(self, call: Callable[[], T], *, patient: bool = False) -> T:
        """`call()` on a thread; `Busy` when none is free within `wait` seconds, unless `patient`.

        The common case (a thread free) costs what `run_in_executor` does: no timer, and the thread is
        counted free again by the awaiting task, not by a second wake-up of the loop from the thread
        (measured: that and the timer added ~15 us a call, a few per request)."""
        if patient or not self._free.locked():
            await self._free.acquire()  # at once, or for as long as it takes
        else:
            try:
                async with asyncio.timeout(self.wait):
                    await self._free.acquire()
            except TimeoutError:
                raise Busy() from None
        try:
            future = self._executor.submit(call)
        except BaseException:
            self._free.release()
            raise
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The request went away, its work may still run: the thread is busy until the work ends.
            if future.done():
                self._free.release()
            else:
                loop = asyncio.get_running_loop()
                future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._free.release))
            raise
        except BaseException:
            self._free.release()
            raise
        self._free.release()
        return result

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class AgedLine:
    """Threads whose line turns work away when its turn comes, if it waited longer than `wait` seconds:
    `Busy`, unstarted. For work that is itself short or bounded, so that no turn is long in coming."""

    def __init__(self, threads: int, wait: float, name: str) -> None:
        self.wait = wait
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, call: Callable[[], T]) -> T:
        queued = time.monotonic()

        def in_turn() -> T:
            if time.monotonic() - queued > self.wait:
                raise Busy()
            return call()

        # A caller that goes away cancels its work if it has not started (`wrap_future`).
        return await asyncio.wrap_future(self._executor.submit(in_turn))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@asynccontextmanager
async def turn(line: asyncio.Semaphore, wait: float) -> AsyncIterator[None]:
    """Hold one of `line`'s places for the block; `Busy` when none comes within `wait` seconds."""
    try:
        async with asyncio.timeout(wait):
            await line.acquire()
    except TimeoutError:
        raise Busy() from None
    try:
        yield
    finally:
        line.release()
