"""Throttling of failed sign-ins and verifications, shared by every server process.

Only failures count, within 15 minutes: 10 per username from one client address, 30 per address,
and 100 per username from all addresses together. A stranger's wrong passwords from elsewhere
therefore lock the owner's own address only after the last, much higher limit; a username's
failures never block another username below the address limit. Verification mails asked for
again count too (5 per user), since each one is a mail sent and a token stored. The failures are
kept in the database (`ugc/platform/auth_failures.py`), so every server process counts the same ones.
"""

from __future__ import annotations

import math
from datetime import timedelta

from ugc.clock import Clock
from ugc.ids import normalise
from ugc.platform.auth_failures import Subject, latest_failures, record_failure
from ugc.platform.database import Database

WINDOW = timedelta(minutes=15)
LIMITS = {"username_at_address": 10, "address": 30, "username": 100, "resend": 5}


def subjects(address: str, username: str | None = None) -> list[Subject]:
    found = [Subject("address", address)]
    if username is not None:
        name = normalise(username)
        found += [Subject("username_at_address", f"{name} {address}"), Subject("username", name)]
    return found


def resends(user_id: int) -> list[Subject]:
    return [Subject("resend", str(user_id))]


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
