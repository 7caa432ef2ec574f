"""Throttling of failed sign-ins and verifications, shared by every server process.

Only failures count: 10 per username or 30 per client address within 15 minutes. A username's
failures never block another username below the address limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from ugc.clock import Clock
from ugc.ids import normalise
from ugc.platform.database import Database

WINDOW = timedelta(minutes=15)
LIMITS = {"username": 10, "address": 30}


@dataclass(frozen=True)
class Subject:
    scope: str
    key: str


def subjects(address: str, username: str | None = None) -> list[Subject]:
    found = [Subject("address", address)]
    if username is not None:
        found.append(Subject("username", normalise(username)))
    return found


class FailureThrottle:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def retry_after(self, who: list[Subject]) -> int | None:
        """Seconds until the first subject over its limit may try again, or None if none is."""
        now = self.clock.now()
        since = now - WINDOW
        waits = []
        with self.db.transaction() as cur:
            for subject in who:
                rows = cur.execute(
                    "SELECT at FROM auth_failures WHERE scope = %s AND key = %s AND at > %s ORDER BY at DESC LIMIT %s",
                    (subject.scope, subject.key, since, LIMITS[subject.scope]),
                ).fetchall()
                if len(rows) >= LIMITS[subject.scope]:
                    # Free again when the oldest of the last `limit` failures leaves the window.
                    oldest = rows[-1]["at"]
                    waits.append(max(1, math.ceil((oldest + WINDOW - now).total_seconds())))
        return max(waits) if waits else None

    def record_failure(self, who: list[Subject]) -> None:
        now = self.clock.now()
        with self.db.transaction(write=True) as cur:
            for subject in who:
                cur.execute(
                    "INSERT INTO auth_failures (scope, key, at) VALUES (%s, %s, %s)",
                    (subject.scope, subject.key, now),
                )
                cur.execute(
                    "DELETE FROM auth_failures WHERE scope = %s AND key = %s AND at <= %s",
                    (subject.scope, subject.key, now - WINDOW),
                )
