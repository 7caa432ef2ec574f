"""A user's standing: whether the account exists (and is not erased), and whether its e-mail is verified.

Both facts come from the user aggregate, the write side's own truth, so a verification counts on
the very next request, in every process, with no projection to wait for. A standing once seen is
kept for `KEPT_FOR`: within it, checking a token against the account costs a dictionary
lookup; after it, the account is asked again, so an erasure (`ugc users erase`, another process)
shuts out the person's tokens everywhere within that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from eventsourcing.application import AggregateNotFoundError

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
        self.clock = clock
        self._kept = LRU[int, tuple[Standing, datetime]](capacity)

    def known(self, user_id: int) -> Standing | None:
        """The standing kept in memory and still fresh, if any (no I/O: callable on the event loop)."""
        kept = self._kept.get(user_id)
        return kept[0] if kept is not None and self.clock.now() - kept[1] < KEPT_FOR else None

    def load(self, user_id: int) -> Standing | None:
        """The standing as the event store has it now; None for an account that does not exist."""
        try:
            user: User = self.app.repository.get(aggregate_id("user", user_id))
        except AggregateNotFoundError:
            return None
        if user.erased:
            return None
        standing = Standing(user_id, bool(user.is_verified))
        self._kept.put(user_id, (standing, self.clock.now()))
        return standing
