"""One database read answering every request that asked for it before the read began.

A query that must see everything committed before it arrived (read-your-writes: a client that
got 2xx for a command and then asks) can be answered by any read that *began* after it arrived.
So a burst of requests needs one read, not one each: callers join the read that has not yet
begun; while one is running, newcomers wait for the next, which begins when the running one ends
and serves all of them. Under load the cost of the read is shared by every request of a burst;
alone, a request pays one read as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedRead(Generic[T]):
    """Coalesces calls of `read` (an event-loop coroutine function) under the rule above.

    Only ever used from one event loop, so it needs no lock.
    """

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._running = False
        self._next: asyncio.Future[T] | None = None  # the read not yet begun: anyone may still join it

    @property
    def idle(self) -> bool:
        """No read running and nobody waiting for one."""
        return not self._running and self._next is None

    async def get(self) -> T:
        future = self._next
        if future is None:
            future = self._next = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            if not self._running:
                self._begin()
        # Shielded: a request that goes away must not cancel the read the others are waiting for.
        return await asyncio.shield(future)

    def _begin(self) -> None:
        self._running = True
        asyncio.ensure_future(self._serve_next())

    async def _serve_next(self) -> None:
        """One read for everyone who joined before it began; then the next, if anyone joined meanwhile."""
        try:
            while (future := self._next) is not None:
                self._next = None  # from here on, newcomers wait for the next read
                try:
                    future.set_result(await self._read())
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except Exception as error:
                    future.set_exception(error)
        finally:
            self._running = False


def _retrieve(future: asyncio.Future[T]) -> None:
    """Mark an outcome as seen even when every waiter has gone (no 'exception never retrieved')."""
    if not future.cancelled():
        future.exception()
