"""The one bounded memory of the code base: the least recently used entry is forgotten first.

Every cache of ours goes through `LRU` (tokens already verified, listing answers and totals,
aggregates kept while their log stands still, order numbers of the notifications projection, the
stream hashes a process appended last), so each is bounded the same way and safe to share between
threads. The event store's own aggregate cache is the library's (`AGGREGATE_CACHE_MAXSIZE`,
`ugc/platform/store.py`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """An OrderedDict, most recently used last, behind a lock: a lookup reorders it, so reads write too.

    The standard library's ordered dict moves and evicts in C: cachetools' LRUCache, used before,
    took several Python calls per lookup, and the notifications projection looks up or keeps an
    order for every event of the orders log (~7% of its catch-up's time, issue 14).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._put(key, value)

    def put_unless(self, key: K, value: V, keep: Callable[[V], bool]) -> None:
        """`put`, unless the entry there now is one to `keep`: decided under the lock, so of two
        threads putting at once the better value stays, whichever comes last."""
        with self._lock:
            current = self._entries.get(key)
            if current is None or not keep(current):
                self._put(key, value)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
