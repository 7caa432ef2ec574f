"""Work that met a dead pooled connection, done again on another one when that is safe.

After a restart or a failover, or once an operator terminated the sessions, every pooled connection
is dead and is found so only when used. The event stores' reads were to retry that, as the library's
own do (`eventsourcing.utils.retry`), but named psycopg's classes where the store raises its own, so
they never did: a projection runner backed off a second at each dead connection, three in a row, and
the commands waiting for it answered 503 for seconds after a blip that lasted milliseconds. Nor
were the read database's reads, a sequence's next value, nor an append that failed before its
COMMIT: a chat frame sent just after a blip met two dead connections, one after the other, and was
answered "try again" twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from ugc.platform.dialect import psycopg_loaded

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)


# Work retried this many times when its pooled connection turns out dead. The first loss has the
# pool's other idle connections checked at once (`purge`): they died together, and found one by one
# they would each cost an attempt (README: "Connection budget").
ATTEMPTS = 3
RETRY_WAIT = 0.05  # seconds


def connection_lost(error: BaseException) -> bool:
    """Whether `error` (or what the event store wrapped in it) is a session that the server ended
    (terminated, restarting, failed over) or a connection that broke: a new one may well work.

    Not a lock wait that ran out, a query cancelled, nor a pool that found no connection in time:
    retried, those would multiply the wait the caller was promised."""
    if not psycopg_loaded():  # no error of psycopg's where it is not loaded (SQLite)
        return False
    import psycopg
    from psycopg_pool import PoolTimeout

    cause = error if isinstance(error, psycopg.Error) else error.__cause__
    if isinstance(cause, PoolTimeout) or not isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return cause.sqlstate is None or cause.sqlstate.startswith(("08", "57P"))


def again_when_connection_lost(attempt: Callable[[], T], purge: Callable[[], None] | None = None) -> T:
    """`attempt()` again, on another connection, while its pooled connection is found dead.

    Only for work that cannot have taken effect when it failed so: a read, a sequence's next value
    (a gap is allowed), a write that failed before its COMMIT was sent. A write whose connection
    broke during its COMMIT may have been stored.
    """
    for _ in range(ATTEMPTS - 1):
        try:
            return attempt()
        except Exception as error:
            if not connection_lost(error):
                raise
            log.warning("a connection was found dead (%s); trying again on another", error)
            if purge is not None:
                purge()
        time.sleep(RETRY_WAIT)
    return attempt()


async def again_when_connection_lost_async(
    attempt: Callable[[], Awaitable[T]], purge: Callable[[], Awaitable[None]] | None = None
) -> T:
    """`again_when_connection_lost` for a coroutine's work, on an asyncio pool."""
    for _ in range(ATTEMPTS - 1):
        try:
            return await attempt()
        except Exception as error:
            if not connection_lost(error):
                raise
            log.warning("a connection was found dead (%s); trying again on another", error)
            if purge is not None:
                await purge()
        await asyncio.sleep(RETRY_WAIT)
    return await attempt()


def retried_when_connection_lost(read: Callable[P, T]) -> Callable[P, T]:
    """`read` again, on another connection, when its pooled connection was found dead (a read of an
    event store, whose pool the library keeps: not purged, each attempt finds the next)."""

    @functools.wraps(read)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        return again_when_connection_lost(lambda: read(*args, **kwargs))

    return retrying
