"""The event stores: one `eventsourcing` application per bounded context.

Every append takes an exclusive lock on its application's events table, so contexts get their
own application (and table) to keep writes to one from queueing behind another.
`eventsourcing_settings` is the one place that turns a database URL into the library's settings.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import cast
from urllib.parse import unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

# Importing the domain registers every stored event's topic, so any process can read the log.
from ugc import (  # noqa: F401
    accounts,
    catalog,
    claims,
    creator_skills,
    creators,
    files,
    messaging,
    notifications,
    orders,
    portfolio,
    services,
)
from ugc.config import is_postgres, pool_sizes, sqlite_path

AGGREGATE_CACHE_SIZE = 5_000  # per application and process; an aggregate here is a few KiB at most


class Accounts(Application[UUID]):
    """Users, their unique-name claims, verification tokens and creator profiles."""

    name = "accounts"


class Catalog(Application[UUID]):
    """Categories, skills, services, creators' skills and portfolios."""

    name = "catalog"


class Files(Application[UUID]):
    """Uploaded files: who owns them, where their bytes are, which orders they were delivered in."""

    name = "files"


class Orders(Application[UUID]):
    """Orders: placing, the lifecycle, deliveries and reviews."""

    name = "orders"


class Messaging(Application[UUID]):
    """Conversations, messages, read markers of conversations and of notifications.

    Read markers are aggregates with a history of their own; snapshots keep loading them cheap.
    """

    name = "messaging"
    snapshotting_intervals = {messaging.ConversationRead: 50, notifications.NotificationsRead: 50}


APPLICATION_CLASSES: tuple[type[Application[UUID]], ...] = (Accounts, Catalog, Files, Orders, Messaging)


def eventsourcing_settings(database_url: str, app_name: str, *, create_table: bool) -> dict[str, str]:
    """The `eventsourcing` environment for application `app_name` on `database_url`.

    On SQLite the library's table names are fixed, so each application gets a sibling file
    beside the main database (`ugc.sqlite3` -> `ugc.accounts.sqlite3`).
    """
    common = {
        "CREATE_TABLE": "y" if create_table else "n",
        # Commands load the same users, services and orders again and again. A cached aggregate is
        # brought up to date with one query for the events after its version (fast-forward, the
        # library's default), so another process's writes are never missed; what is saved is the
        # decoding and replaying of every earlier event (half of placing an order's CPU).
        "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZE),
    }
    if database_url.startswith("sqlite:///"):
        main = sqlite_path(database_url)
        return common | {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(main.with_name(f"{main.stem}.{app_name}{main.suffix or '.sqlite3'}")),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if is_postgres(database_url):
        url = urlsplit(database_url)
        return common | {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            # Small resident pools: several server processes share one max_connections.
            "POSTGRES_POOL_SIZE": "0",
            "POSTGRES_MAX_OVERFLOW": str(pool_sizes().orders_store if app_name == Orders.name else pool_sizes().store),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            # The insert's table lock must not wait forever; the caller turns it into a 503.
            "POSTGRES_LOCK_TIMEOUT": "5",
            # No ping before each checkout: it cost a round trip per query (~15 ms of wall time per
            # placed order, bench/RESULTS.md). The recorder retries OperationalError itself, and the
            # pool drops a connection that broke, so a restarted server is survived without it.
            "POSTGRES_PRE_PING": "n",
        }
    raise ValueError(f"unsupported database URL {database_url!r}: use sqlite:/// or postgresql://")


class EventStores:
    """The applications of one process, opened on one database URL."""

    def __init__(self, database_url: str, *, create_table: bool = False) -> None:
        self._postgres = is_postgres(database_url)
        self.applications: dict[str, Application[UUID]] = {
            cls.name: cls(env=eventsourcing_settings(database_url, cls.name, create_table=create_table))
            for cls in APPLICATION_CLASSES
        }
        self._heads_columns: dict[frozenset[str], str] = {}

    @property
    def accounts(self) -> Application[UUID]:
        return self.applications[Accounts.name]

    @property
    def catalog(self) -> Application[UUID]:
        return self.applications[Catalog.name]

    @property
    def files(self) -> Application[UUID]:
        return self.applications[Files.name]

    @property
    def orders(self) -> Application[UUID]:
        return self.applications[Orders.name]

    @property
    def messaging(self) -> Application[UUID]:
        return self.applications[Messaging.name]

    def __getitem__(self, name: str) -> Application[UUID]:
        return self.applications[name]

    def heads(self, names: Collection[str] | None = None) -> dict[str, int]:
        """The last notification id of each application's log (0 while empty), of all or `names`.

        On PostgreSQL every log is a table of one database: one statement reads them all (the
        projection runner asks before every round). SQLite keeps each log in a file of its own.
        """
        chosen = self._chosen(names)
        columns = self.heads_columns(chosen)
        if columns is None:
            return {name: app.recorder.max_notification_id() or 0 for name, app in chosen.items()}
        recorder = cast(PostgresApplicationRecorder, next(iter(chosen.values())).recorder)
        with recorder.datastore.get_connection() as conn, conn.cursor() as cur:
            row = cur.execute(f"SELECT {columns}").fetchone()
        assert row is not None
        return {name: row[name] or 0 for name in chosen}

    def heads_columns(self, names: Collection[str] | None = None) -> str | None:
        """SELECT columns, one per log of `names` (or all) named after it, that read the logs' heads
        (NULL while empty), for a statement that reads something else too; None on SQLite, or for none."""
        chosen = self._chosen(names)
        if not chosen or not self._postgres:
            return None
        key = frozenset(chosen)
        columns = self._heads_columns.get(key)
        if columns is None:  # composing them costs more than running them
            recorders = {name: cast(PostgresApplicationRecorder, app.recorder) for name, app in chosen.items()}
            columns = (
                SQL(", ")
                .join(
                    SQL("(SELECT MAX(notification_id) FROM {}.{}) AS {}").format(
                        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name), Identifier(name)
                    )
                    for name, recorder in recorders.items()
                )
                .as_string()
            )
            self._heads_columns[key] = columns
        return columns

    def _chosen(self, names: Collection[str] | None) -> dict[str, Application[UUID]]:
        return {name: app for name, app in self.applications.items() if names is None or name in names}

    def close(self) -> None:
        for application in self.applications.values():
            application.close()


def create_event_tables(database_url: str) -> None:
    """Create every application's tables; call only under the migration lock."""
    if database_url.startswith("sqlite:///"):
        sqlite_path(database_url).parent.mkdir(parents=True, exist_ok=True)
    EventStores(database_url, create_table=True).close()
