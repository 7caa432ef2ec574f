"""Database errors that mean "not now": which ones, and the retry of work that met a dead session.

psycopg raises most outages as `OperationalError` (a lost connection, a restart, a full disk, a lock
wait that ran out), and `eventsourcing` wraps those as its own `OperationalError`: both answer 503.
A database that refuses writes (a standby that a failover has not promoted yet, or one set
`default_transaction_read_only`) raises `ReadOnlySqlTransaction`, an `InternalError`, which the event
store wraps as `eventsourcing`'s `InternalError`: every write answered 500 while it lasted.
SQLite raises its outages as `sqlite3.OperationalError` too, but so it does a wrong statement ("no
such column"): its result code tells them apart. The read database's were counted against the event a
projection was applying, as if it were faulty: another process holding the file's write lock past
the busy timeout (an operator's `sqlite3` shell, a backup) had good events count failures, and with
a full disk parked.

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
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import psycopg
from eventsourcing.persistence import OperationalError
from psycopg.errors import ReadOnlySqlTransaction
from psycopg_pool import PoolTimeout

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)


def refuses_writes(error: BaseException) -> bool:
    """Whether `error` (or what the event store wrapped in it) is the database refusing any write."""
    return isinstance(error, ReadOnlySqlTransaction) or isinstance(error.__cause__, ReadOnlySqlTransaction)


# SQLite's primary result codes that mean "not now" rather than a bug: another connection held the
# file past the busy timeout, or the file cannot be opened, read, written or grown (a full disk, a
# read-only file or file system, an I/O error).
SQLITE_OUTAGES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def sqlite_unavailable(error: BaseException) -> bool:
    """Whether `error` is SQLite's file being busy or unusable for now (`SQLITE_OUTAGES`), not a wrong
    statement: the read database raises SQLite's own errors, unwrapped."""
    return isinstance(error, sqlite3.OperationalError) and error.sqlite_errorcode & 0xFF in SQLITE_OUTAGES


def database_away(error: BaseException) -> bool:
    """Whether `error` is the database being out of service rather than a fault of the work that met
    it: unreachable, restarting, a connection lost or not had in time (`OperationalError`, psycopg's or
    the event store's wrapping of it), refusing writes, or SQLite's file busy or unusable for now.
    Retried later, that work may well succeed."""
    return (
        isinstance(error, psycopg.OperationalError | OperationalError)
        or refuses_writes(error)
        or sqlite_unavailable(error)
    )


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
