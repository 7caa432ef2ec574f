"""Database errors that mean "not now": the database out of service, not the work that met it at fault.

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
"""

from __future__ import annotations

import sqlite3

from eventsourcing.persistence import OperationalError

from ugc.platform.dialect import psycopg_errors


def refuses_writes(error: BaseException) -> bool:
    """Whether `error` (or what the event store wrapped in it) is the database refusing any write."""
    read_only = psycopg_errors("ReadOnlySqlTransaction")  # none on SQLite
    return isinstance(error, read_only) or isinstance(error.__cause__, read_only)


def psycopg_unavailable(error: BaseException) -> bool:
    """Whether `error` is psycopg's `OperationalError` (never, where psycopg is not loaded: SQLite)."""
    return isinstance(error, psycopg_errors("OperationalError"))


# SQLite's primary result codes that mean "not now" rather than a bug: another connection held the
# file past the busy timeout, or the file cannot be opened, read, written or grown (a full disk, a
# read-only file or file system, an I/O error), or a read ran past its bound and was interrupted
# (`database.statements_bounded`, as PostgreSQL cancels one at UGC_DB_READ_TIMEOUT).
SQLITE_OUTAGES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_INTERRUPT,
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
        isinstance(error, OperationalError)
        or psycopg_unavailable(error)
        or refuses_writes(error)
        or sqlite_unavailable(error)
    )
