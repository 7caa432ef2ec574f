"""`auth_failures`: when sign-ins and verifications failed, per subject (a username, an address).

The table the API's throttle counts (`api/throttle.py` decides the limits and the wait); rows
older than the throttle's window are forgotten as new failures arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ugc.platform.database import Database

DDL = (
    """CREATE TABLE IF NOT EXISTS auth_failures (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS auth_failures_key ON auth_failures (scope, key, at)",
)


@dataclass(frozen=True)
class Subject:
    scope: str  # "address", "username_at_address", "username" or "resend" (api/throttle.py)
    key: str


def latest_failures(db: Database, who: Sequence[tuple[Subject, int]], since: datetime) -> list[list[datetime]]:
    """For each (subject, limit): when its last `limit` failures after `since` happened, newest first;
    all read in one transaction."""
    with db.transaction() as cur:
        return [
            [
                row["at"]
                for row in cur.execute(
                    "SELECT at FROM auth_failures WHERE scope = %s AND key = %s AND at > %s ORDER BY at DESC LIMIT %s",
                    (subject.scope, subject.key, since, limit),
                ).fetchall()
            ]
            for subject, limit in who
        ]


def record_failure(db: Database, who: Sequence[Subject], at: datetime, forget_until: datetime) -> None:
    """A failure of every subject in `who` at `at`; their failures until `forget_until` are forgotten."""
    with db.transaction(write=True) as cur:
        for subject in who:
            cur.execute(
                "INSERT INTO auth_failures (scope, key, at) VALUES (%s, %s, %s)", (subject.scope, subject.key, at)
            )
            cur.execute(
                "DELETE FROM auth_failures WHERE scope = %s AND key = %s AND at <= %s",
                (subject.scope, subject.key, forget_until),
            )
