"""Aggregates that a command reads but never changes, kept while their log stands still.

Placing an order reads the buyer and the service. The library's cache would fast-forward each one
with a query of its own and deep-copy it (two thirds of placing's CPU, bench/RESULTS.md). Here one
query reads the heads of the logs involved; an aggregate loaded when its log's head was the same
is still current, since nothing at all was appended there since. Only when a log moved on is the
aggregate loaded again, through the library (fast-forwarded, a copy of our own from then on).

What `get` answers is shared between threads and must never be changed.

Requests that arrive while the heads are being read wait for the next read rather than each
start their own: any read that began after a request arrived shows every write before it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any
from uuid import UUID

from cachetools import LRUCache

from ugc.store import AGGREGATE_CACHE_SIZE, EventStores


class SharedHeads:
    """Log heads read for many threads at once: each caller gets a read that began after it called."""

    def __init__(self, stores: EventStores, applications: Collection[str]) -> None:
        self.stores = stores
        self.applications = tuple(applications)
        self._changed = threading.Condition()
        self._started = 0  # reads begun so far; the n-th read's answer is kept as (n, heads)
        self._reading = False
        self._last: tuple[int, dict[str, int]] = (0, {})

    def read(self) -> dict[str, int]:
        with self._changed:
            wanted = self._started + 1  # the first read to begin from now on will do
            while self._last[0] < wanted:
                if not self._reading:
                    self._reading = True
                    self._started += 1
                    ours = self._started
                    break
                self._changed.wait()
            else:
                return self._last[1]
        heads: dict[str, int] | None = None
        try:
            heads = self.stores.heads(self.applications)
            return heads
        finally:  # failed, the waiters elect another reader
            with self._changed:
                if heads is not None:
                    self._last = (ours, heads)
                self._reading = False
                self._changed.notify_all()


class ReadOnlyAggregates:
    def __init__(self, stores: EventStores, maxsize: int = AGGREGATE_CACHE_SIZE) -> None:
        self.stores = stores
        self._heads: dict[tuple[str, ...], SharedHeads] = {}
        self._lock = threading.Lock()
        # (application, aggregate id) -> (head of its log read before it was loaded, the aggregate)
        self._kept: LRUCache[tuple[str, UUID], tuple[int, Any]] = LRUCache(maxsize)

    def now(self, applications: Collection[str]) -> ReadOnlyView:
        """A view of `applications` as they stand now: every aggregate it gives is at least this new."""
        key = tuple(sorted(applications))
        with self._lock:
            heads = self._heads.get(key) or self._heads.setdefault(key, SharedHeads(self.stores, key))
        return ReadOnlyView(self, heads.read())

    def _get(self, application: str, aggregate_id: UUID, head: int) -> Any:
        key = (application, aggregate_id)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[0] >= head:
            return kept[1]
        # Raises AggregateNotFoundError for an unknown id; nothing is kept then.
        aggregate: Any = self.stores[application].repository.get(aggregate_id)
        with self._lock:
            newer = self._kept.get(key)
            if newer is None or newer[0] < head:
                self._kept[key] = (head, aggregate)
        return aggregate


class ReadOnlyView:
    """Aggregates current as of the heads read when the view was made; read them, never change them."""

    def __init__(self, aggregates: ReadOnlyAggregates, heads: dict[str, int]) -> None:
        self._aggregates = aggregates
        self.heads = heads

    def get(self, application: str, aggregate_id: UUID) -> Any:
        return self._aggregates._get(application, aggregate_id, self.heads[application])
