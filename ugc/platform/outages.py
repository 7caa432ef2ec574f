"""Database errors that mean "not now": which ones, and the retry of a read that met a dead session.

psycopg raises most outages as `OperationalError` (a lost connection, a restart, a full disk, a lock
wait that ran out), and `eventsourcing` wraps those as its own `OperationalError`: both answer 503.
A database that refuses writes (a standby that a failover has not promoted yet, or one set
`default_transaction_read_only`) raises `ReadOnlySqlTransaction`, an `InternalError`, which the event
store wraps as `eventsourcing`'s `InternalError`: every write answered 500 while it lasted.

After a restart or a failover, or once an operator terminated the sessions, every pooled connection
is dead and is found so only when used. The event stores' reads were to retry that, as the library's
own do (`eventsourcing.utils.retry`), but named psycopg's classes where the store raises its own, so
they never did: a projection runner backed off a second at each dead connection, three in a row, and
the commands waiting for it answered 503 for seconds after a blip that lasted milliseconds.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg
from eventsourcing.persistence import OperationalError
from psycopg.errors import ReadOnlySqlTransaction
from psycopg_pool import PoolTimeout

P = ParamSpec("P")
T = TypeVar("T")


def refuses_writes(error: BaseException) -> bool:
    """Whether `error` (or what the event store wrapped in it) is the database refusing any write."""
    return isinstance(error, ReadOnlySqlTransaction) or isinstance(error.__cause__, ReadOnlySqlTransaction)


def database_away(error: BaseException) -> bool:
    """Whether `error` is the database being out of service rather than a fault of the work that met
    it: unreachable, restarting, a connection lost or not had in time (`OperationalError`, psycopg's or
    the event store's wrapping of it), or refusing writes. Retried later, that work may well succeed."""
    return isinstance(error, psycopg.OperationalError | OperationalError) or refuses_writes(error)


# A read retried this many times when its pooled connection turns out dead: the pool discards each
# dead one it hands out, and an event store's pool holds two at most (README: "Connection budget").
READ_ATTEMPTS = 3
READ_RETRY_WAIT = 0.05  # seconds


def connection_lost(error: BaseException) -> bool:
    """Whether `error` (or what the event store wrapped in it) is a session that the server ended
    (terminated, restarting, failed over) or a connection that broke: a new one may well work.

    Not a lock wait that ran out, a query cancelled, nor a pool that found no connection in time:
    retried, those would multiply the wait the caller was promised."""
    cause = error if isinstance(error, psycopg.Error) else error.__cause__
    if isinstance(cause, PoolTimeout) or not isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return cause.sqlstate is None or cause.sqlstate.startswith(("08", "57P"))


def retried_when_connection_lost(read: Callable[P, T]) -> Callable[P, T]:
    """`read` again, on another connection, when its pooled connection was found dead.

    For reads only: a write whose connection broke during its COMMIT may have been stored.
    """

    @functools.wraps(read)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(READ_ATTEMPTS - 1):
            try:
                return read(*args, **kwargs)
            except Exception as error:
                if not connection_lost(error):
                    raise
            time.sleep(READ_RETRY_WAIT)
        return read(*args, **kwargs)

    return retrying
