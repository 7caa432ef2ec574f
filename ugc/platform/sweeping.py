"""The leader's job that forgets what has outlived its use: expired `Idempotency-Key` answers,
sign-in attempts older than the throttle's window, sign-in sessions whose newest refresh token has
expired, SQLite's erasure marks that every process has read (`erasures.MARKS_KEPT_FOR`), and what the
callers pass as `elsewhere` (the scratch sets an interrupted rebuild left: `projections/scratch.py`).

Each of those went only when the same key, subject or kind of work came back, so a client using a
new key per request (as it should) or one address never seen again left its rows for good: every
keyed answer (~16 KB for a message) stayed in the database; an erasure's mark, a signed-out session
with no sign-in after it, a copy of the read tables with no rebuild after it stayed as well.
One DELETE per table, and each sweep of `elsewhere`, every `interval` (UGC_SWEEP_INTERVAL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from ugc.platform import erasures, refresh_families
from ugc.platform.database import Database

SWEEP_INTERVAL = 600.0  # seconds between sweeps


class Sweeper:
    def __init__(
        self,
        db: Database,
        now: Callable[[], datetime],
        *,
        keys_kept_for: timedelta,
        attempts_kept_for: timedelta,
        interval: float = SWEEP_INTERVAL,
        elsewhere: Sequence[Callable[[], int]] = (),
    ) -> None:
        self.db = db
        self.now = now  # the clock's (a test moves it)
        self.keys_kept_for = keys_kept_for
        self.attempts_kept_for = attempts_kept_for
        self.interval = interval
        self.elsewhere = tuple(elsewhere)  # each sweeps a store of its own; what it forgot
        self._due = 0.0  # time.monotonic() of the next sweep: the first round sweeps

    def run_once(self) -> int:
        """Sweep if it is time; the rows (and other things) forgotten."""
        if time.monotonic() < self._due:
            return 0
        self._due = time.monotonic() + self.interval
        now = self.now()
        with self.db.transaction(write=True) as cur:
            keys = cur.execute(
                "DELETE FROM idempotency_keys WHERE created_at < %s", (now - self.keys_kept_for,)
            ).rowcount
            attempts = cur.execute("DELETE FROM auth_failures WHERE at < %s", (now - self.attempts_kept_for,)).rowcount
            sessions = refresh_families.sweep(cur, now)
            marks = erasures.sweep_marks(cur, now - erasures.MARKS_KEPT_FOR)
        return keys + attempts + sessions + marks + sum(sweep() for sweep in self.elsewhere)
