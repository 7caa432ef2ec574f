"""`idempotency_keys`: who claimed an `Idempotency-Key` first, what its command appended, and the
answer to replay.

A row goes through: claimed (`status` NULL, `appended` NULL) -> about to append (`intent`: lines
naming each aggregate and version the command's save will append, written before each save;
commands/intents.py) -> appended (`appended` holds the positions the command's events landed at,
JSON) -> answered (`status`, `body`, and `etag`, the answer's ETag if it had one). `intent` is what
ties the key to its command if the process dies (or its session is terminated) between the
append's commit and the `appended` update. The table's primary key decides who is first; the API
(`api/idempotency_keys.py`) decides what a later request with the key gets (the answer, a wait, or
a refusal). A row with `appended` set is never deleted before it expires: its command was applied,
and running it again would apply it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, Row, add_column

# How long a key's row is kept: a retry within it gets the first answer; the leader's sweeper forgets
# older ones (`ugc.platform.sweeping`).
KEPT_FOR = timedelta(hours=24)

DDL = (
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        user_id BIGINT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        created_at {timestamp} NOT NULL,
        appended TEXT,
        intent TEXT,
        etag TEXT,
        PRIMARY KEY (user_id, key))""",
    # What the leader's sweep forgets (ugc/platform/sweeping.py) is found by it.
    "CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at)",
)


def add_later_columns(cur: Cursor) -> None:
    """Give a table created before `appended`, `intent` or `etag` existed those columns."""
    for column in ("appended", "intent", "etag"):
        add_column(cur, "idempotency_keys", f"{column} TEXT")


def claim(
    db: Database,
    user_id: int,
    key: str,
    fingerprint: str,
    at: datetime,
    expired_before: datetime,
    abandoned_before: datetime,
    abandoned_intent: str = "",
) -> bool:
    """Whether this call took the key: first with it, first since its row expired, or first since
    its claimer abandoned it (in flight since before `abandoned_before`, nothing appended, and its
    `intent` still `abandoned_intent`: none, or one the caller found not applied)."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND (created_at < %s "
            "OR (status IS NULL AND appended IS NULL AND created_at < %s AND COALESCE(intent, '') = %s))",
            (user_id, key, expired_before, abandoned_before, abandoned_intent),
        )
        cur.execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (user_id, key) DO NOTHING",
            (user_id, key, fingerprint, at),
        )
        return cur.rowcount == 1


def claimed(db: Database, user_id: int, key: str) -> Row | None:
    """The claim's `fingerprint`, `created_at`, `appended`, `intent`; its answer's `status`,
    `body` and `etag` (None until finished)."""
    with db.read() as cur:
        return cur.execute(
            "SELECT fingerprint, status, body, etag, created_at, appended, intent FROM idempotency_keys "
            "WHERE user_id = %s AND key = %s",
            (user_id, key),
        ).fetchone()


def intend(db: Database, user_id: int, key: str, intent: str) -> None:
    """Add `intent` (lines) to what the key's command is about to append, before its save commits."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET intent = COALESCE(intent, '') || %s WHERE user_id = %s AND key = %s",
            (intent, user_id, key),
        )


def appended(db: Database, user_id: int, key: str, positions: Mapping[str, int]) -> None:
    """Record where the key's command appended: from now on the key is never released."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET appended = %s WHERE user_id = %s AND key = %s",
            (json.dumps(dict(positions), sort_keys=True), user_id, key),
        )


def finish(db: Database, user_id: int, key: str, status: int, body: str, etag: str | None) -> None:
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET status = %s, body = %s, etag = %s WHERE user_id = %s AND key = %s",
            (status, body, etag, user_id, key),
        )


def settle_lost(db: Database, user_id: int, key: str, status: int, body: str) -> None:
    """Answer a key whose command was applied but whose answer was lost with `status` and `body`,
    unless it has an answer already; it is kept like an appended one."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET status = %s, body = %s, appended = COALESCE(appended, '{}') "
            "WHERE user_id = %s AND key = %s AND status IS NULL",
            (status, body, user_id, key),
        )


def release(db: Database, user_id: int, key: str, intent: str) -> None:
    """Let go of a claim whose command appended nothing (its `intent` is still `intent`, found not
    applied), so a retry runs it."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND appended IS NULL "
            "AND COALESCE(intent, '') = %s",
            (user_id, key, intent),
        )


def answers_kept_for(db: Database, user_id: int) -> int:
    """How many successful answers are kept for the user's keys (what `forget_user` drops that may show
    their personal data)."""
    with db.read() as cur:
        row = cur.execute(
            "SELECT count(*) AS kept FROM idempotency_keys WHERE user_id = %s AND status BETWEEN 200 AND 299",
            (user_id,),
        ).fetchone()
    return int(row["kept"]) if row is not None else 0


def forget_user(db: Database, user_id: int) -> None:
    """Drop every key of the user's: the answers kept for retries may show their e-mail or names."""
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM idempotency_keys WHERE user_id = %s", (user_id,))
