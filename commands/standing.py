"""A user's standing: whether the account exists, and whether its e-mail is verified.

Both facts come from the user aggregate, the write side's own truth, so a verification counts on
the very next request, in every process, with no projection to wait for. Both only ever turn one
way in this domain (no account is removed, no verified e-mail becomes unverified again), so a
standing once seen is kept: after the first request a process serves a verified user, checking
their token against the account costs a dictionary lookup. An unverified standing is read again
whenever a write needs it (`fresh=True`). If accounts can one day be closed, closing must reach
this memory (or bound it with a time to live) — it is the one place that would need it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventsourcing.application import AggregateNotFoundError

from ugc.accounts import User
from ugc.ids import aggregate_id
from ugc.platform.cache import LRU
from ugc.platform.store import EventStores

KEPT_STANDINGS = 100_000  # ~200 bytes each: 20 MB at most per process


@dataclass(frozen=True)
class Standing:
    user_id: int
    verified: bool


class Standings:
    def __init__(self, stores: EventStores, capacity: int = KEPT_STANDINGS) -> None:
        self.app = stores.accounts
        self._kept = LRU[int, Standing](capacity)

    def known(self, user_id: int) -> Standing | None:
        """The standing kept in memory, if any (no I/O: callable on the event loop)."""
        return self._kept.get(user_id)

    def load(self, user_id: int) -> Standing | None:
        """The standing as the event store has it now; None for an account that does not exist."""
        try:
            user: User = self.app.repository.get(aggregate_id("user", user_id))
        except AggregateNotFoundError:
            return None
        standing = Standing(user_id, bool(user.is_verified))
        self._kept.put(user_id, standing)
        return standing
