"""`idempotency_keys`: who claimed an `Idempotency-Key` first, what its command appended, and the
answer to replay.

A row goes through: claimed (`status` NULL, `appended` NULL) -> appended (`appended` holds the
positions the command's events landed at, JSON) -> answered (`status`, `body`). The table's primary
key decides who is first; the API (`api/idempotency_keys.py`) decides what a later request with the
key gets (the answer, a wait, or a refusal). A row with `appended` set is never deleted before it
expires: its command was applied, and running it again would apply it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, Row

DDL = (
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        user_id BIGINT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        created_at {timestamp} NOT NULL,
        appended TEXT,
        PRIMARY KEY (user_id, key))""",
)


def add_later_columns(cur: Cursor) -> None:
    """Give a table created before `appended` existed that column."""
    if cur.dialect == "postgresql":
        cur.execute("ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS appended TEXT")
    elif cur.execute("SELECT 1 FROM pragma_table_info('idempotency_keys') WHERE name = 'appended'").fetchone() is None:
        cur.execute("ALTER TABLE idempotency_keys ADD COLUMN appended TEXT")


def claim(
    db: Database,
    user_id: int,
    key: str,
    fingerprint: str,
    at: datetime,
    expired_before: datetime,
    abandoned_before: datetime,
) -> bool:
    """Whether this call took the key: first with it, first since its row expired, or first since
    its claimer abandoned it (in flight since before `abandoned_before`, nothing appended)."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND (created_at < %s "
            "OR (status IS NULL AND appended IS NULL AND created_at < %s))",
            (user_id, key, expired_before, abandoned_before),
        )
        cur.execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (user_id, key) DO NOTHING",
            (user_id, key, fingerprint, at),
        )
        return cur.rowcount == 1


def claimed(db: Database, user_id: int, key: str) -> Row | None:
    """The claim's `fingerprint`, `created_at`, `appended`; its answer's `status` and `body` (None until finished)."""
    with db.read() as cur:
        return cur.execute(
            "SELECT fingerprint, status, body, created_at, appended FROM idempotency_keys "
            "WHERE user_id = %s AND key = %s",
            (user_id, key),
        ).fetchone()


def appended(db: Database, user_id: int, key: str, positions: Mapping[str, int]) -> None:
    """Record where the key's command appended: from now on the key is never released."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET appended = %s WHERE user_id = %s AND key = %s",
            (json.dumps(dict(positions), sort_keys=True), user_id, key),
        )


def finish(db: Database, user_id: int, key: str, status: int, body: str) -> None:
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET status = %s, body = %s WHERE user_id = %s AND key = %s",
            (status, body, user_id, key),
        )


def release(db: Database, user_id: int, key: str) -> None:
    """Let go of a claim whose command appended nothing, so a retry runs it."""
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND appended IS NULL", (user_id, key))
