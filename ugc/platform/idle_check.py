"""Pooled PostgreSQL connections that heal: one that sat idle is pinged before it is handed out.

After a database restart or a terminated session every idle connection in a pool is dead, and
psycopg only learns it when a query fails: each one used to cost one later request a 503, minutes
afterwards. A ping on every checkout would find them too, but costs a round trip per read (the
event store's pre-ping cost ~15 ms of wall time per placed order, bench/results/). So only a
connection idle for longer than `IDLE_BEFORE_CHECK` is pinged: a database that restarted was down
longer than that, so every connection it killed has been idle at least as long, while a busy
connection, the common case, goes out as it is. A dead one is discarded by the pool, which tries
the next; a restart then costs at most the requests in flight.
"""

from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

IDLE_BEFORE_CHECK = 1.0  # seconds


class IdleCheck:
    """The `check` and `reset` callbacks of one pool: `reset` notes when a connection came back."""

    def __init__(self, idle: float = IDLE_BEFORE_CHECK) -> None:
        self.idle = idle
        self._returned: WeakKeyDictionary[Any, float] = WeakKeyDictionary()

    def _idle(self, conn: Any) -> bool:
        """Whether `conn` sat unused longer than `idle`, or was never handed out (a pool opens its
        first connections at start, and a session cut before their first use kills them unused)."""
        returned = self._returned.get(conn)
        return returned is None or time.monotonic() - returned > self.idle

    def check(self, conn: psycopg.Connection[Any]) -> None:
        if self._idle(conn):
            ConnectionPool.check_connection(conn)

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        self._returned[conn] = time.monotonic()

    async def check_async(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._idle(conn):
            await AsyncConnectionPool.check_connection(conn)

    async def reset_async(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._returned[conn] = time.monotonic()
