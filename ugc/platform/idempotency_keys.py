"""`idempotency_keys`: who claimed an `Idempotency-Key` first, and the answer to replay.

The table's primary key decides who is first; the API (`api/idempotency_keys.py`) decides what
a later request with the key gets (the answer, a wait, or a refusal).
"""

from __future__ import annotations

from datetime import datetime

from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        user_id BIGINT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        created_at {timestamp} NOT NULL,
        PRIMARY KEY (user_id, key))""",
)


def claim(db: Database, user_id: int, key: str, fingerprint: str, at: datetime, expired_before: datetime) -> bool:
    """Whether this call took the key (first with it, or first since its claim expired)."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND created_at < %s",
            (user_id, key, expired_before),
        )
        cur.execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (user_id, key) DO NOTHING",
            (user_id, key, fingerprint, at),
        )
        return cur.rowcount == 1


def claimed(db: Database, user_id: int, key: str) -> Row | None:
    """The claim's `fingerprint`, and its answer's `status` and `body` (None until finished)."""
    with db.read() as cur:
        return cur.execute(
            "SELECT fingerprint, status, body FROM idempotency_keys WHERE user_id = %s AND key = %s",
            (user_id, key),
        ).fetchone()


def finish(db: Database, user_id: int, key: str, status: int, body: str) -> None:
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET status = %s, body = %s WHERE user_id = %s AND key = %s",
            (status, body, user_id, key),
        )


def release(db: Database, user_id: int, key: str) -> None:
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s", (user_id, key))
