"""The event stores: one `eventsourcing` application per bounded context.

Every append takes an exclusive lock on its application's events table, so contexts get their
own application (and table) to keep writes to one from queueing behind another.
`eventsourcing_settings` is the one place that turns a database URL into the library's settings.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper
from eventsourcing.utils import get_topic

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
from ugc.personal import PERSONAL
from ugc.platform.chain import ChainedLog, ChainHead, RecordedEvent
from ugc.platform.chain_sqlite import ChainedSQLiteRecorder
from ugc.platform.database import STORE_LOCK_TIMEOUT
from ugc.platform.dead_connections import retried_when_connection_lost
from ugc.platform.dialect import Cursor, Row
from ugc.platform.personal_data import DataKeys, PersonalDataMapper
from ugc.platform.sqlite_pragmas import SQLITE_BUSY_TIMEOUT
from ugc.platform.sqlite_store import ConfiguredSQLiteFactory
from ugc.platform.transcoder import OrjsonTranscoder

if TYPE_CHECKING:  # imported by a process on PostgreSQL only (`eventsourcing_settings`)
    from eventsourcing.postgres import PostgresApplicationRecorder

    from ugc.platform.chain_postgres import ChainedPostgresRecorder

AGGREGATE_CACHE_SIZE = 5_000  # per application and process; an aggregate here is a few KiB at most
# Order commands load their orders through GroupCommit, which keeps those it saved itself
# (commands/group_commit.py, KEPT); the library's cache serves only the odd other read of an order,
# bounded all the same so a worker's memory stays flat under steady traffic (~2.2 KiB an order;
# bench/results/soak-2026-12-03-0321.md saw 5,000 take the whole soak to fill).
AGGREGATE_CACHE_SIZES = {"orders": 1_000}


class Accounts(Application[UUID]):
    """Users, their unique-name claims, verification tokens and creator profiles.

    Its mapper seals personal data (`ugc/platform/personal_data.py`); `EventStores` gives it the
    table of data keys once the recorder, whose connections that table uses, exists.
    """

    name = "accounts"

    def construct_mapper(self) -> Mapper[UUID]:
        return PersonalDataMapper(self.construct_transcoder(), PERSONAL)


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
        "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZES.get(app_name, AGGREGATE_CACHE_SIZE)),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),  # the library's JSON, decoded in C
    }
    if database_url.startswith("sqlite:///"):
        main = sqlite_path(database_url)
        return common | {
            # The library's SQLite persistence, its connections given our settings (sqlite_store.py).
            "PERSISTENCE_MODULE": get_topic(ConfiguredSQLiteFactory),
            # Every append also writes its events' chain rows (README: "Audit: the hash chain").
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedSQLiteRecorder),
            "SQLITE_DBNAME": str(main.with_name(f"{main.stem}.{app_name}{main.suffix or '.sqlite3'}")),
            "SQLITE_LOCK_TIMEOUT": str(round(SQLITE_BUSY_TIMEOUT)),  # the read side's wait, in whole seconds
        }
    if is_postgres(database_url):
        # With psycopg and the library's PostgreSQL module: a process on SQLite imports neither.
        from ugc.platform.chain_postgres import ChainedPostgresRecorder

        url = urlsplit(database_url)
        return common | {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedPostgresRecorder),
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
            "POSTGRES_LOCK_TIMEOUT": str(STORE_LOCK_TIMEOUT),
            # No ping before each checkout: it cost a round trip per query (~15 ms of wall time per
            # placed order, bench/RESULTS.md). The reads retry on another connection when theirs was
            # found dead (ugc/platform/dead_connections.py), and the pool drops a connection that broke, so a
            # restarted server is survived without it.
            "POSTGRES_PRE_PING": "n",
        }
    raise ValueError(f"unsupported database URL {database_url!r}: use sqlite:/// or postgresql://")


class EventStores:
    """The applications of one process, opened on one database URL."""

    def __init__(self, database_url: str, *, data_key: str | None = None, create_table: bool = False) -> None:
        """`data_key`: the master key of personal data (`Settings.data_key`); without it, sealing or
        reading a person's sealed fields raises `PersonalDataError` (the rest of the log reads)."""
        self._postgres = is_postgres(database_url)
        self.applications: dict[str, Application[UUID]] = {
            cls.name: cls(env=eventsourcing_settings(database_url, cls.name, create_table=create_table))
            for cls in APPLICATION_CLASSES
        }
        for name, app in self.applications.items():
            if (chained := self._chained(app.recorder)) is not None:
                chained.context = name  # hashed into every event of the context
        self.data_keys = _data_keys(self.applications[Accounts.name], self._postgres, data_key)
        if self.data_keys is not None and create_table:
            self.data_keys.create_table()
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

    def heads(self, names: Collection[str] | None = None, *, on: Cursor | None = None) -> dict[str, int]:
        """The last notification id of each application's log (0 while empty), of all or `names`.

        On PostgreSQL every log is a table of one database: one statement reads them all (the
        projection runner asks before every round), on the stores' own connection, or on `on`, a
        cursor of the caller's on that database (`Database.probing`'s). SQLite keeps each log in a
        file of its own, read through its store.
        """
        chosen = self._chosen(names)
        columns = self.heads_columns(chosen)
        if columns is None:
            return {name: app.recorder.max_notification_id() or 0 for name, app in chosen.items()}
        if on is not None:
            row = on.execute(f"SELECT {columns}").fetchone()
        else:
            row = self._read_heads(columns, cast("PostgresApplicationRecorder", next(iter(chosen.values())).recorder))
        assert row is not None
        return {name: row[name] or 0 for name in chosen}

    @staticmethod
    @retried_when_connection_lost
    def _read_heads(columns: str, recorder: PostgresApplicationRecorder) -> Row | None:
        with recorder.datastore.get_connection() as conn, conn.cursor() as cur:
            row: Row | None = cur.execute(f"SELECT {columns}").fetchone()
        return row

    def heads_columns(self, names: Collection[str] | None = None) -> str | None:
        """SELECT columns, one per log of `names` (or all) named after it, that read the logs' heads
        (NULL while empty), for a statement that reads something else too; None on SQLite, or for none."""
        chosen = self._chosen(names)
        if not chosen or not self._postgres:
            return None
        key = frozenset(chosen)
        columns = self._heads_columns.get(key)
        if columns is None:  # composing them costs more than running them
            from psycopg.sql import SQL, Identifier

            recorders = {name: cast("PostgresApplicationRecorder", app.recorder) for name, app in chosen.items()}
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

    def chained(self, name: str) -> ChainedLog:
        """Context `name`'s log read together with its hash chain."""
        recorder = self.applications[name].recorder
        chained = self._chained(recorder)
        if chained is None:
            raise TypeError(f"the {name} log is not recorded with its chain ({type(recorder).__name__})")
        return chained

    def _chained(self, recorder: object) -> ChainedPostgresRecorder | ChainedSQLiteRecorder | None:
        return _chained(recorder, self._postgres)

    def recorded_events(self, name: str, stream: UUID, *, gt: int = 0, lte: int | None = None) -> list[RecordedEvent]:
        """One stream's events of context `name`, oldest first (versions above `gt`, up to `lte`),
        each with its position, recording time and chain hashes."""
        return self.chained(name).recorded_stream(stream, gt=gt, lte=lte)

    def recorded_range(self, name: str, start: int, stop: int, limit: int = 1000) -> list[RecordedEvent]:
        """Context `name`'s events at positions `start`..`stop` (both included), at most `limit`."""
        return self.chained(name).recorded_range(start, stop, limit)

    def chain_head(self, name: str) -> ChainHead | None:
        """Context `name`'s last chain row (position, link, recording time); None while empty."""
        return self.chained(name).chain_head()

    def chain_heads(self) -> dict[str, ChainHead | None]:
        """Every context's last chain row: what a checkpoint signs."""
        return {name: self.chain_head(name) for name in self.applications}

    def _chosen(self, names: Collection[str] | None) -> dict[str, Application[UUID]]:
        return {name: app for name, app in self.applications.items() if names is None or name in names}

    def close(self) -> None:
        for application in self.applications.values():
            application.close()


def _chained(recorder: object, postgres: bool) -> ChainedPostgresRecorder | ChainedSQLiteRecorder | None:
    """`recorder` if it keeps the hash chain (its dialect's recorder), else None (an in-memory store)."""
    if postgres:
        from ugc.platform.chain_postgres import ChainedPostgresRecorder

        return recorder if isinstance(recorder, ChainedPostgresRecorder) else None
    return recorder if isinstance(recorder, ChainedSQLiteRecorder) else None


def _data_keys(app: Application[UUID], postgres: bool, data_key: str | None) -> DataKeys | None:
    """The accounts application's table of data keys, given to its mapper; None for an in-memory
    store (tests of the domain): nothing personal is kept."""
    assert isinstance(app.mapper, PersonalDataMapper)
    recorder = _chained(app.recorder, postgres)
    if recorder is None:
        return None
    app.mapper.keys = DataKeys(
        recorder.datastore,
        f"{Accounts.name}_data_keys" if postgres else "data_keys",
        data_key,
        events_table=recorder.events_table_name,
    )
    return app.mapper.keys


def check_data_key(database_url: str, data_key: str | None) -> None:
    """Refuse a `data_key` other than the database's (`DataKeys.check`), on the accounts log's store
    alone: opening every context's, as `EventStores` does, costs a `ugc` command on PostgreSQL four more
    pools, connections and composite-type lookups (~0.03 s of the server's CPU and 0.08 s, measured)."""
    app = Accounts(env=eventsourcing_settings(database_url, Accounts.name, create_table=False))
    try:
        if (keys := _data_keys(app, is_postgres(database_url), data_key)) is not None:
            keys.check()
    finally:
        app.close()


def owned_by_another_role(database_url: str) -> str | None:
    """The role owning the event tables when it is not the one connected (PostgreSQL), else None.

    Where the logs are append-only for the application's role (README: "Append-only on
    PostgreSQL"), that role cannot run DDL: the owner migrates (`ugc migrate`) and the application's
    processes leave the schema as they find it.
    """
    if not is_postgres(database_url):
        return None
    from ugc.platform.postgres_driver import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'orders_events' "
            "AND tableowner <> current_user"
        ).fetchone()
    return str(row[0]) if row else None


def create_event_tables(database_url: str) -> None:
    """Create every application's tables and chain the events stored before the chain existed (in
    batches, each under the context's append lock); call only under the migration lock."""
    if database_url.startswith("sqlite:///"):
        sqlite_path(database_url).parent.mkdir(parents=True, exist_ok=True)
    stores = EventStores(database_url, create_table=True)
    try:
        for name in stores.applications:
            while stores.chained(name).chain_backlog():  # a log stored before the chain: chained once
                pass
    finally:
        stores.close()
