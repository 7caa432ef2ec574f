"""Throttling of failed sign-ins and verifications, shared by every server process.

Only failures count, within 15 minutes: 10 per username from one client address, 30 per address,
and 100 per username from all addresses together. A stranger's wrong passwords from elsewhere
therefore lock the owner's own address only after the last, much higher limit; a username's
failures never block another username below the address limit. Verification mails asked for
again count too (5 per user), since each one is a mail sent and a token stored. The failures are
kept in the database (`ugc/platform/auth_failures.py`), so every server process counts the same ones.

An attempt is recorded, in flight, before it runs, and starts only if it stays within the limits
even should every attempt in flight fail: a burst of wrong passwords sent at once is held to the
same limits as one sent one after another. An attempt that would not fit while others are in flight
waits for them to end (`SETTLE_WAIT` at most, woken when one of this process ends and polling for
the others'), and is refused 429 only once the failures alone reach a limit: correct sign-ins sent
at once never get 429 for each other (10 of 40 did, from one address, when in-flight attempts
counted as failures). `Retry-After` is when the failures that reached the limit leave the window.
If those in flight have not ended by then, nothing failed: the server is too slow to decide, and
answers 503 with `Retry-After: 1` as it does for other overloads (a burst of 120 correct sign-ins
from one address on SQLite had correct ones told their attempts had failed too often).

An attempt whose process died between its start and its answer (`kill -9`, a crash) counts as
nothing: its client got no answer, so it learnt nothing from it. Counting it as a failure instead
kept a burst's correct sign-ins, cut short by a `kill -9`, as failures for 15 minutes. Which
process runs an attempt is recorded with it (`member`, its name among the lease members), and an
attempt counts in flight only while that process is a live member, as the projections' leases know
it (`ugc/platform/leases.py`): every server process renews its membership every 0.5 s from a thread
and a connection of its own, never waiting for a pooled connection behind its requests (on SQLite
it takes its turn at the one write lock), and one that stopped is out 3 s after its last renewal,
on the database's clock. Under a flood of 600 wrong sign-ins, 100 at once, the renewals came at
most 1.6 s apart (by hand, on this 2-core machine, both backends), well within the 3 s. An address
whose limit was in flight in a killed process is admitted again 2.5-3 s after the kill
(tests/test_throttle_crash.py, measured 2.5-3.0 s on SQLite and on PostgreSQL); a fixed time
instead (`DEAD_AFTER`, 30 s) answered every sign-in from it 503 for that long (28.5-29.2 s
measured: an office behind one NAT locked out by a crash), and no fixed time is both above any live
attempt (a password hash under load) and within seconds. An attempt of a live process counts for as
long as it runs, however slow.

The membership is the leases' rather than one of the throttle's own: every server process keeps it
already (an API-only one keeps a keeper of no lease for it, ugc/wiring.py `membership`), on both
backends alike, read on the database's clock, so hosts whose clocks disagree agree on who is alive.
A lock held for the process's life (an advisory lock on a connection of its own, a `flock`) would
see a death at once, but would take a mechanism per backend, and a connection dropped by a blip
would take a live process for dead until it reconnects. A process frozen (SIGSTOP, a paused VM)
for more than 3 s is taken for dead, as it loses its leases: its attempts stop counting until it
ticks again, and those that fail then stand as failures. A process of an earlier release (a
rolling deploy) names no member: its attempts are taken for dead after `DEAD_AFTER`, as they were.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from api import errors
from ugc.clock import Clock
from ugc.ids import normalise
from ugc.platform import auth_failures
from ugc.platform.auth_failures import WINDOW, Subject, Tally
from ugc.platform.database import Database

LIMITS = {"username_at_address": 10, "address": 30, "username": 100, "resend": 5}
SETTLE_WAIT = 3.0  # seconds an attempt waits for those in flight before it is refused
POLL = 0.1  # seconds between looks at attempts of other processes, which end unheard here
DEAD_AFTER = timedelta(seconds=30)  # an earlier release's attempt in flight (no member named): far above any live one

Blocking = Callable[..., Awaitable[Any]]  # runs blocking work off the event loop (`Services.run`)


def subjects(address: str, username: str | None = None) -> list[Subject]:
    found = [Subject("address", address)]
    if username is not None:
        name = normalise(username)
        found += [Subject("username_at_address", f"{name} {address}"), Subject("username", name)]
    return found


def resends(user_id: int) -> list[Subject]:
    return [Subject("resend", str(user_id))]


def _refusal(who: list[Subject]) -> str:
    """The message of a 429 for attempts against `who`: resends are mails sent, not failed attempts,
    which the sign-ins' message said."""
    return "resends_throttled" if all(subject.scope == "resend" for subject in who) else "throttled"


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
    def __init__(self, db: Database, clock: Clock, member: str) -> None:
        self.db = db
        self.clock = clock
        self.member = member  # this process's name among the live lease members (wiring's `membership`)
        self._waiting: set[asyncio.Future[None]] = set()  # attempts waiting for one in flight to end

    @asynccontextmanager
    async def attempt(self, run: Blocking, who: list[Subject]) -> AsyncIterator[Attempt]:
        """The block is an attempt against `who`: 429 with `Retry-After` instead, if one of them is at its limit.

        `run` takes the database work off the event loop (`Services.run`). The attempt settles
        (a failure, or taken back) before the block's outcome goes on to the client.
        """
        key = await self._started(run, who)
        attempt = Attempt()
        try:
            yield attempt
        finally:
            try:
                await run(auth_failures.settle, self.db, who, key, failed=attempt.counts)
            finally:
                self._wake()

    async def _started(self, run: Blocking, who: list[Subject]) -> str:
        """The key of the attempt recorded in flight, once it fits; 429 once failures alone are at a
        limit, 503 when those in flight did not end within `SETTLE_WAIT`."""
        limited = [(subject, LIMITS[subject.scope]) for subject in who]
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            now = self.clock.now()
            started: tuple[str | None, list[Tally]] = await run(
                auth_failures.attempt, self.db, limited, now, now - WINDOW, now - DEAD_AFTER, self.member
            )
            key, tallies = started
            if key is not None:
                return key
            limits = [limit for _, limit in limited]
            if any(len(tally.failures) >= limit for tally, limit in zip(tallies, limits, strict=True)):
                raise errors.throttled(_until_failures_leave(tallies, limits, now), _refusal(who))
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.unavailable()
            await self._one_ends(min(left, POLL))

    async def _one_ends(self, timeout: float) -> None:
        """Return when an attempt of this process ends, or after `timeout`."""
        ended = asyncio.get_running_loop().create_future()
        self._waiting.add(ended)
        try:
            await asyncio.wait((ended,), timeout=timeout)
        finally:
            self._waiting.discard(ended)

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, set()
        for ended in waiting:
            if not ended.done():
                ended.set_result(None)


def _seconds(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _until_failures_leave(tallies: list[Tally], limits: list[int], now: datetime) -> int:
    """Seconds until every subject whose failures are at its limit may try again: when the oldest of
    its last `limit` failures leaves the window (attempts in flight play no part)."""
    return max(
        _seconds(tally.failures[-1] + WINDOW, now)
        for tally, limit in zip(tallies, limits, strict=True)
        if len(tally.failures) >= limit
    )
