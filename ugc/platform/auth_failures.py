"""`auth_failures`: when sign-ins and verifications failed, per subject (a username, an address).

The table the API's throttle counts (`api/throttle.py` decides the limits and the wait). An
attempt is recorded before its outcome is known and taken back if it did not fail; rows older
than the throttle's window are forgotten as new attempts arrive.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor

DDL = (
    """CREATE TABLE IF NOT EXISTS auth_failures (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        at {timestamp} NOT NULL,
        attempt TEXT)""",
    "CREATE INDEX IF NOT EXISTS auth_failures_key ON auth_failures (scope, key, at)",
)


@dataclass(frozen=True)
class Subject:
    scope: str  # "address", "username_at_address", "username" or "resend" (api/throttle.py)
    key: str


THROTTLE_LOCKS = 0x7468  # the first key of the advisory locks taken here ("th"), beside each subject's hash


def attempt(
    db: Database, who: Sequence[tuple[Subject, int]], at: datetime, forget_until: datetime
) -> tuple[str | None, list[list[datetime]]]:
    """An attempt at `at` against every (subject, limit) of `who`, unless one is at its limit.

    Checked and recorded in one transaction, with each subject's rows locked meanwhile (on
    PostgreSQL an advisory lock per subject, on SQLite the write lock), so attempts sent at once
    are counted one after another: a burst cannot all pass the check before any is recorded. The
    rows stand as failures until `forget` takes the attempt back. Returns its key and `[]`; or,
    when a subject is at its limit, None and each subject's last `limit` rows since
    `forget_until`, newest first (nothing recorded). Each subject's older rows are forgotten.
    """
    key = secrets.token_hex(8)
    with db.transaction(write=True) as cur:
        if cur.dialect == "postgresql":
            for subject in sorted({subject for subject, _ in who}, key=lambda s: (s.scope, s.key)):
                cur.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (THROTTLE_LOCKS, f"{subject.scope} {subject.key}")
                )
        latest = [
            [
                row["at"]
                for row in cur.execute(
                    "SELECT at FROM auth_failures WHERE scope = %s AND key = %s AND at > %s ORDER BY at DESC LIMIT %s",
                    (subject.scope, subject.key, forget_until, limit),
                ).fetchall()
            ]
            for subject, limit in who
        ]
        if any(len(times) >= limit for times, (_, limit) in zip(latest, who, strict=True)):
            return None, latest
        for subject, _ in who:
            cur.execute(
                "INSERT INTO auth_failures (scope, key, at, attempt) VALUES (%s, %s, %s, %s)",
                (subject.scope, subject.key, at, key),
            )
            cur.execute(
                "DELETE FROM auth_failures WHERE scope = %s AND key = %s AND at <= %s",
                (subject.scope, subject.key, forget_until),
            )
    return key, []


def forget(db: Database, who: Sequence[Subject], key: str) -> None:
    """Take back the attempt `key` against `who`: it did not fail."""
    with db.transaction(write=True) as cur:
        for subject in who:
            cur.execute(
                "DELETE FROM auth_failures WHERE scope = %s AND key = %s AND attempt = %s",
                (subject.scope, subject.key, key),
            )


def add_later_columns(cur: Cursor) -> None:
    """Give a table created before attempts were recorded ahead of their outcome the `attempt` column."""
    if cur.dialect == "postgresql":
        cur.execute("ALTER TABLE auth_failures ADD COLUMN IF NOT EXISTS attempt TEXT")
    elif cur.execute("SELECT 1 FROM pragma_table_info('auth_failures') WHERE name = 'attempt'").fetchone() is None:
        cur.execute("ALTER TABLE auth_failures ADD COLUMN attempt TEXT")
