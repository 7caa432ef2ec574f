"""The one bounded memory of the code base: the least recently used entry is forgotten first.

Every cache of ours goes through `LRU` (tokens already verified, listing answers and totals,
aggregates kept while their log stands still, order numbers of the notifications projection, the
stream hashes a process appended last), so each is bounded the same way and safe to share between
threads. The event store's own aggregate cache is the library's (`AGGREGATE_CACHE_MAXSIZE`,
`ugc/platform/store.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """cachetools' LRUCache behind a lock: a lookup reorders the cache, so reads write too."""

    def __init__(self, capacity: int) -> None:
        self._cache: LRUCache[K, V] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._cache[key] = value

    def put_unless(self, key: K, value: V, keep: Callable[[V], bool]) -> None:
        """`put`, unless the entry there now is one to `keep`: decided under the lock, so of two
        threads putting at once the better value stays, whichever comes last."""
        with self._lock:
            current = self._cache.get(key)
            if current is None or not keep(current):
                self._cache[key] = value

    def discard(self, key: K) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
