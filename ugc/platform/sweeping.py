"""The leader's job that forgets platform rows past their use: expired `Idempotency-Key` answers,
sign-in attempts older than the throttle's window, and SQLite's erasure marks that every process
has read (`erasures.MARKS_KEPT_FOR`).

Both tables drop such rows only when the same key or subject comes back, so a client using a new key
per request (as it should) or one address never seen again left its rows for good: every keyed
answer (~16 KB for a message) stayed in the database; an erasure's mark stayed for good as well.
One DELETE per table every `interval`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from ugc.platform import erasures
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
    ) -> None:
        self.db = db
        self.now = now  # the clock's (a test moves it)
        self.keys_kept_for = keys_kept_for
        self.attempts_kept_for = attempts_kept_for
        self.interval = interval
        self._due = 0.0  # time.monotonic() of the next sweep: the first round sweeps

    def run_once(self) -> int:
        """Sweep if it is time; the rows forgotten."""
        if time.monotonic() < self._due:
            return 0
        self._due = time.monotonic() + self.interval
        now = self.now()
        with self.db.transaction(write=True) as cur:
            keys = cur.execute(
                "DELETE FROM idempotency_keys WHERE created_at < %s", (now - self.keys_kept_for,)
            ).rowcount
            attempts = cur.execute("DELETE FROM auth_failures WHERE at < %s", (now - self.attempts_kept_for,)).rowcount
            marks = erasures.sweep_marks(cur, now - erasures.MARKS_KEPT_FOR)
        return keys + attempts + marks
