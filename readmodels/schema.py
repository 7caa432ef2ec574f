"""DDL of every table beside the event store, created once by `ugc migrate`."""

from __future__ import annotations

from readmodels import (
    catalog,
    creator_skills,
    creators,
    files,
    messaging,
    notifications,
    orders,
    portfolio,
    refresh_families,
    services,
    stored_bytes,
    users,
)
from ugc.database import Database
from ugc.ids import ID_KINDS

# Tables of the machinery itself; each read model's module holds its own DDL.
INFRASTRUCTURE = (
    """CREATE TABLE IF NOT EXISTS projection_tracking (
        projection TEXT NOT NULL,
        application TEXT NOT NULL,
        position BIGINT NOT NULL DEFAULT 0,
        read_model {bool} NOT NULL,
        PRIMARY KEY (projection, application))""",
    """CREATE TABLE IF NOT EXISTS id_sequences (
        kind TEXT PRIMARY KEY,
        value BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS auth_failures (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS auth_failures_key ON auth_failures (scope, key, at)",
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        user_id BIGINT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        created_at {timestamp} NOT NULL,
        PRIMARY KEY (user_id, key))""",
    *refresh_families.DDL,
    *stored_bytes.DDL,
)


# A statement is portable SQL, or a dict of dialect -> SQL for what differs (indexes, search).
Statement = str | dict[str, str]
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


def create_tables(db: Database) -> None:
    """Run every CREATE ... IF NOT EXISTS; `{timestamp}`-style placeholders name portable types."""
    with db.transaction(write=True) as cur:
        for statement in (*INFRASTRUCTURE, *(ddl for module in READ_MODELS for ddl in module)):
            sql = statement if isinstance(statement, str) else statement.get(db.dialect)
            if sql:
                cur.execute(sql.format(**db.types))
        for kind in ID_KINDS:
            db.create_sequence(cur, kind)
