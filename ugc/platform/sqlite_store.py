"""The library's SQLite persistence, its connections given our settings (`sqlite_pragmas.EVENT_STORES`).

`eventsourcing.sqlite` opens each event store's connections with SQLite's defaults (WAL is all it
sets): without a `journal_size_limit`, a long read beside heavy appends left the store's `-wal` at
its peak size until the last process closed the file. `PERSISTENCE_MODULE` names this factory
(`store.eventsourcing_settings`).
"""

from __future__ import annotations

from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory
from eventsourcing.utils import Environment, EnvType

from ugc.platform.sqlite_pragmas import EVENT_STORES, configure


class ConfiguredConnectionPool(SQLiteConnectionPool):
    """The library's pool of SQLite connections, each given EVENT_STORES as it is opened."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        with connection.cursor() as cursor:
            configure(cursor, EVENT_STORES)
        return connection


class ConfiguredSQLiteFactory(SQLiteFactory):
    """The library's SQLite factory, its datastore's pool a `ConfiguredConnectionPool`."""

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        # The library's datastore makes its pool itself, by name; it has opened no connection yet.
        made = self.datastore.pool
        self.datastore.pool = ConfiguredConnectionPool(
            db_name=made.db_name,
            lock_timeout=made.lock_timeout,
            pool_size=made.pool_size,
            max_overflow=made.max_overflow,
            pool_timeout=made.pool_timeout,
            max_age=made.max_age,
            pre_ping=made.pre_ping,
        )
        made.close()
