"""Throttling of failed sign-ins and verifications, shared by every server process.

Only failures count, within 15 minutes: 10 per username from one client address, 30 per address,
and 100 per username from all addresses together. A stranger's wrong passwords from elsewhere
therefore lock the owner's own address only after the last, much higher limit; a username's
failures never block another username below the address limit. Verification mails asked for
again count too (5 per user), since each one is a mail sent and a token stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from ugc.clock import Clock
from ugc.database import Database
from ugc.ids import normalise

WINDOW = timedelta(minutes=15)
LIMITS = {"username_at_address": 10, "address": 30, "username": 100, "resend": 5}


@dataclass(frozen=True)
class Subject:
    scope: str
    key: str


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
