"""Throttling of failed sign-ins and verifications, shared by every server process.

Only failures count, within 15 minutes: 10 per username from one client address, 30 per address,
and 100 per username from all addresses together. A stranger's wrong passwords from elsewhere
therefore lock the owner's own address only after the last, much higher limit; a username's
failures never block another username below the address limit. Verification mails asked for
again count too (5 per user), since each one is a mail sent and a token stored. The failures are
kept in the database (`ugc/platform/auth_failures.py`), so every server process counts the same ones;
an attempt is counted from its start, so a burst of them sent at once is held to the same limits.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from api import errors
from ugc.clock import Clock
from ugc.ids import normalise
from ugc.platform import auth_failures
from ugc.platform.auth_failures import Subject
from ugc.platform.database import Database

WINDOW = timedelta(minutes=15)
LIMITS = {"username_at_address": 10, "address": 30, "username": 100, "resend": 5}

Blocking = Callable[..., Awaitable[Any]]  # runs blocking work off the event loop (`Services.run`)


def subjects(address: str, username: str | None = None) -> list[Subject]:
    found = [Subject("address", address)]
    if username is not None:
        name = normalise(username)
        found += [Subject("username_at_address", f"{name} {address}"), Subject("username", name)]
    return found


def resends(user_id: int) -> list[Subject]:
    return [Subject("resend", str(user_id))]


class Attempt:
    """One sign-in, verification or resend, counted against its subjects from the start.

    It stays counted if `count()` was called (a failure, or a resend: each is a mail sent), and is
    taken back when its block ends otherwise.
    """

    def __init__(self) -> None:
        self.counts = False

    def count(self) -> None:
        self.counts = True


class FailureThrottle:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @asynccontextmanager
    async def attempt(self, run: Blocking, who: list[Subject]) -> AsyncIterator[Attempt]:
        """The block is an attempt against `who`: 429 with `Retry-After` instead, if one of them is at its limit.

        The attempt is recorded before the block runs, so attempts sent at once are counted one
        after another (each checked against those before it, in flight or failed). `run` takes
        the database work off the event loop (`Services.run`).
        """
        key = await run(self._begin, who)
        attempt = Attempt()
        try:
            yield attempt
        finally:
            if not attempt.counts:
                await run(auth_failures.forget, self.db, who, key)

    def _begin(self, who: list[Subject]) -> str:
        now = self.clock.now()
        limited = [(subject, LIMITS[subject.scope]) for subject in who]
        key, latest = auth_failures.attempt(self.db, limited, now, now - WINDOW)
        if key is None:
            raise errors.throttled(_retry_after(limited, latest, now))
        return key


def _retry_after(limited: list[tuple[Subject, int]], latest: list[list[datetime]], now: datetime) -> int:
    """Seconds until every subject at its limit may try again."""
    return max(
        # Free again when the oldest of the last `limit` attempts leaves the window.
        max(1, math.ceil((times[-1] + WINDOW - now).total_seconds()))
        for (_, limit), times in zip(limited, latest, strict=True)
        if len(times) >= limit
    )
