"""Database errors that mean "not now" although psycopg does not file them as OperationalError.

psycopg raises most outages as `OperationalError` (a lost connection, a restart, a full disk, a lock
wait that ran out), and `eventsourcing` wraps those as its own `OperationalError`: both answer 503.
A database that refuses writes (a standby that a failover has not promoted yet, or one set
`default_transaction_read_only`) raises `ReadOnlySqlTransaction`, an `InternalError`, which the event
store wraps as `eventsourcing`'s `InternalError`: every write answered 500 while it lasted.
"""

from __future__ import annotations

from psycopg.errors import ReadOnlySqlTransaction


def refuses_writes(error: BaseException) -> bool:
    """Whether `error` (or what the event store wrapped in it) is the database refusing any write."""
    return isinstance(error, ReadOnlySqlTransaction) or isinstance(error.__cause__, ReadOnlySqlTransaction)
