"""A bounded memory shared between threads: the least recently used entry is forgotten first."""

from __future__ import annotations

import threading
from collections.abc import Hashable
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
