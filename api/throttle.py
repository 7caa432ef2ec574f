"""Throttling of failed sign-ins and verifications, shared by every server process.

Only failures count: 10 per username or 30 per client address within 15 minutes. A username's
failures never block another username below the address limit. The failures are kept in the
database (`ugc/platform/auth_failures.py`), so every server process counts the same ones.
"""

from __future__ import annotations

import math
from datetime import timedelta

from ugc.clock import Clock
from ugc.ids import normalise
from ugc.platform.auth_failures import Subject, latest_failures, record_failure
from ugc.platform.database import Database

WINDOW = timedelta(minutes=15)
LIMITS = {"username": 10, "address": 30}


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
        latest = latest_failures(self.db, [(subject, LIMITS[subject.scope]) for subject in who], now - WINDOW)
        waits = [
            # Free again when the oldest of the last `limit` failures leaves the window.
            max(1, math.ceil((times[-1] + WINDOW - now).total_seconds()))
            for subject, times in zip(who, latest, strict=True)
            if len(times) >= LIMITS[subject.scope]
        ]
        return max(waits) if waits else None

    def record_failure(self, who: list[Subject]) -> None:
        now = self.clock.now()
        record_failure(self.db, who, now, now - WINDOW)
