"""A user's standing: whether the account exists (and is not erased), and whether its e-mail is verified.

Both facts come from the write side's own truth, the user aggregate (and, for an erasure cut short
before it stored `User.Erased`, the tombstones of the person's data keys: `commands/erased.py`), so
a verification counts on the very next request, in every process, with no projection to wait for.
A standing once seen is kept for `KEPT_FOR`: within it, checking a token against the account costs a
dictionary lookup.
An erasure (`ugc users erase`, another process) does not wait for that: every server process hears
of it at once (`ugc/platform/erasures.py`) and `forget`s the person's standing, so their tokens are
refused on the next request; `KEPT_FOR` bounds what a process that did not hear would trust.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from eventsourcing.application import AggregateNotFoundError

from commands.erased import counts_as_erased
from ugc.accounts import User
from ugc.clock import Clock
from ugc.ids import aggregate_id
from ugc.platform.cache import LRU
from ugc.platform.store import EventStores

KEPT_STANDINGS = 100_000  # ~200 bytes each: 20 MB at most per process
KEPT_FOR = timedelta(seconds=30)  # an active user's account is read again twice a minute per process


@dataclass(frozen=True)
class Standing:
    user_id: int
    verified: bool


class Standings:
    def __init__(self, stores: EventStores, clock: Clock, capacity: int = KEPT_STANDINGS) -> None:
        self.app = stores.accounts
        self.keys = stores.data_keys
        self.clock = clock
        self._kept = LRU[int, tuple[Standing, datetime]](capacity)
        # Moved by every `forget`: a load that began before one keeps nothing, as what it read may
        # be from before the erasure it was told of.
        self._generation = 0
        self._forgetting = threading.Lock()

    def known(self, user_id: int) -> Standing | None:
        """The standing kept in memory and still fresh, if any (no I/O: callable on the event loop)."""
        kept = self._kept.get(user_id)
        return kept[0] if kept is not None and self.clock.now() - kept[1] < KEPT_FOR else None

    def load(self, user_id: int) -> Standing | None:
        """The standing as the event store has it now; None for an account that does not exist."""
        generation = self._generation
        try:
            user: User = self.app.repository.get(aggregate_id("user", user_id))
        except AggregateNotFoundError:
            return None
        if counts_as_erased(user, self.keys):  # its keys destroyed by an erasure cut short, too
            return None
        standing = Standing(user_id, bool(user.is_verified))
        with self._forgetting:
            if generation == self._generation:
                self._kept.put(user_id, (standing, self.clock.now()))
        return standing

    def forget(self, user_id: int | None = None) -> None:
        """Keep no standing of `user_id` (of anyone: None) from now on, a load under way's included:
        the next check reads the account again. Called once an erasure is committed."""
        with self._forgetting:
            self._generation += 1
            if user_id is None:
                self._kept.clear()
            else:
                self._kept.discard(user_id)
