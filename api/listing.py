"""What a process remembers of the services listing, so that a page asked for again costs no query.

A page is a function of its URL and the listing's state (its positions in the logs it follows,
`readmodels.services.ListingState`): a rendered page remembered under both is never stale, and
any event that changes the listing moves the state. So a request reads the state (one read shared
by every request of a burst, `SharedRead`) and sends the remembered bytes when it has them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.shared_read import SharedRead
from readmodels.services import ListingState, ListingTotals
from ugc.lru import LRU

REMEMBERED_PAGES = 512  # rendered pages per process, ~20 KiB each


class ListingMemory:
    def __init__(self, read_state: Callable[[], Awaitable[ListingState]]) -> None:
        self.state = SharedRead(read_state)
        self.totals = ListingTotals()
        self.pages = LRU[tuple[str, ListingState], bytes](REMEMBERED_PAGES)
