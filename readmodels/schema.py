"""DDL of every table beside the event store, created once by `ugc migrate`."""

from __future__ import annotations

import contextlib
import sqlite3

from readmodels import (
    catalog,
    creator_skills,
    creators,
    files,
    messaging,
    notifications,
    orders,
    parked,
    portfolio,
    services,
    users,
    versions,
)
from readmodels.tracking import reset
from ugc.config import is_postgres, sqlite_path
from ugc.ids import ID_KINDS
from ugc.platform import (
    auth_failures,
    deployment,
    erasures,
    idempotency_keys,
    leases,
    refresh_families,
    schema_stamp,
    stored_bytes,
)
from ugc.platform.database import KEEPALIVES, Database, wait_for_locks
from ugc.platform.dialect import (
    Cursor,
    add_column,
    created_index,
    created_table,
    schema_relations,
    table_exists,
)

# A statement is portable SQL, or a dict of dialect -> SQL for what differs (indexes, search).
Statement = str | dict[str, str]

# Tables of the machinery itself; each read model's module holds its own DDL.
INFRASTRUCTURE: tuple[Statement, ...] = (
    """CREATE TABLE IF NOT EXISTS projection_tracking (
        projection TEXT NOT NULL,
        application TEXT NOT NULL,
        position BIGINT NOT NULL DEFAULT 0,
        read_model {bool} NOT NULL,
        PRIMARY KEY (projection, application))""",
    """CREATE TABLE IF NOT EXISTS id_sequences (
        kind TEXT PRIMARY KEY,
        value BIGINT NOT NULL)""",
    *parked.DDL,
    *versions.DDL,
    # The API's own tables, each with its queries in the platform wing.
    *auth_failures.DDL,
    *idempotency_keys.DDL,
    *refresh_families.DDL,
    *stored_bytes.DDL,
    # SQLite's word of an erasure to every process (ugc/platform/erasures.py).
    *erasures.DDL,
    *deployment.DDL,
    # Who runs which projection (projections/leasing.py).
    *leases.DDL,
    # Which code migrated last: a server process migrates again only when it is another's.
    *schema_stamp.DDL,
)

READ_MODELS: tuple[tuple[Statement, ...], ...] = (
    users.DDL,
    creators.DDL,
    catalog.DDL,
    files.DDL,
    services.DDL,
    orders.DDL,
    creator_skills.DDL,
    portfolio.DDL,
    messaging.DDL,
    notifications.DDL,
)


# Columns given to a table after databases were created with it: (table, column and its type, the
# projection that keeps the table, every table of that projection). CREATE TABLE IF NOT EXISTS
# leaves an older table as it was, so `add_later_columns` adds the column and rewinds the
# projection: emptied and at position 0, it refills its tables from the log, the column included.
_LISTINGS = ("services", "listing_creator_ratings")
_PORTFOLIO = ("portfolio_items", "portfolio_images", "portfolio_media", "portfolio_counts")
_NOTIFICATIONS = (
    "notifications",
    "notification_orders",
    "notification_reads",
    "notification_read_marks",
    "notification_counts",
)
LATER_COLUMNS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("creator_profiles", "version BIGINT NOT NULL DEFAULT 0", "accounts", ("users", "creator_profiles")),
    ("users", "version BIGINT NOT NULL DEFAULT 0", "accounts", ("users", "creator_profiles")),
    ("services", "version BIGINT NOT NULL DEFAULT 0", "listings", _LISTINGS),
    ("listing_creator_ratings", "creator_rating_minor BIGINT NOT NULL DEFAULT 0", "listings", _LISTINGS),
    ("portfolio_items", "version BIGINT NOT NULL DEFAULT 0", "portfolio", _PORTFOLIO),
    ("portfolio_images", "version BIGINT NOT NULL DEFAULT 0", "portfolio", _PORTFOLIO),
    # Order events stopped naming whom they notify: the projection keeps each order's parties.
    ("notification_orders", "buyer_id BIGINT NOT NULL DEFAULT 0", "notifications", _NOTIFICATIONS),
    ("notification_orders", "creator_id BIGINT NOT NULL DEFAULT 0", "notifications", _NOTIFICATIONS),
)

# Tables a projection fills from a version on (table, a table the projection had before, the
# projection, that version). A database whose projection had tables before gets the new one empty,
# and its projection taken as built by the version before: the projection's runners rebuild it
# blue/green (projections/bluegreen.py), so readers never see its tables emptied, as by a rewind.
REBUILT_TABLES: tuple[tuple[str, str, str, int], ...] = (
    ("service_grams", "services", services.PROJECTION, services.GRAMS_VERSION),
)

# Indexes on later columns, (name, DDL): made once `add_later_columns` has given older databases the columns.
LATER_INDEXES: tuple[tuple[str, str], ...] = (services.RATING_INDEX,)


def is_migrated(database_url: str) -> bool:
    """Whether `ugc migrate` made its tables in this database (its first table is there), found
    without creating anything: a mistyped SQLite path stays absent, another application's
    PostgreSQL database untouched."""
    if is_postgres(database_url):
        from ugc.platform.postgres_driver import psycopg

        with psycopg.connect(database_url, connect_timeout=10, **KEEPALIVES) as conn:
            row = conn.execute("SELECT to_regclass('projection_tracking') IS NOT NULL").fetchone()
        return bool(row and row[0])
    path = sqlite_path(database_url)
    if not path.is_file():
        return False
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projection_tracking'")
        return found.fetchone() is not None


def create_tables(db: Database) -> None:
    """Run every CREATE ... IF NOT EXISTS; `{timestamp}`-style placeholders name portable types."""
    with db.transaction(write=True) as cur:
        # A migration waits for its tables' readers and batches however long they hold them (each is
        # bounded itself): failed, it would fail the start of every process that migrates first.
        wait_for_locks(cur)
        rebuilt = [
            (projection, version)
            for table, before, projection, version in REBUILT_TABLES
            if table_exists(cur, before) and not table_exists(cur, table)
        ]
        # The catalogue read once, not a question per table and index: most starts find every one of
        # them, and ~80 round trips were ~40% of a migration's statements, which every server, `ugc
        # project` and in-process app of the tests runs as it starts. A name missing from it (made
        # since) only runs its IF NOT EXISTS statement.
        present = schema_relations(cur)
        for statement in (*INFRASTRUCTURE, *(ddl for module in READ_MODELS for ddl in module)):
            sql = statement if isinstance(statement, str) else statement.get(db.dialect)
            if sql and (created_table(sql) or created_index(sql)) not in present:
                cur.execute(sql.format(**db.types))
        for projection, version in rebuilt:
            versions.at_most(cur, projection, version - 1)
        for kind in ID_KINDS:
            db.create_sequence(cur, kind)
        cur.execute(notifications.KEEP_LIVE_ORDER)
        cur.execute(notifications.COUNT_EXISTING)
        add_later_columns(cur)
        auth_failures.add_later_columns(cur)
        erasures.add_later_columns(cur)
        idempotency_keys.add_later_columns(cur)
        leases.add_later_columns(cur)
        parked.add_later_columns(cur)
        refresh_families.add_later_columns(cur)
        deployment.name_once(cur)
        for _, index in LATER_INDEXES:
            if created_index(index) not in present:
                cur.execute(index)


def add_later_columns(cur: Cursor) -> None:
    """Give an older database the columns of `LATER_COLUMNS` and rewind the projections that fill them."""
    for table, column, projection, tables in LATER_COLUMNS:
        if add_column(cur, table, column):
            for emptied in tables:
                cur.execute(f"DELETE FROM {emptied}")
            reset(cur, projection)
