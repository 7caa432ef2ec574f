"""Pooled PostgreSQL connections that heal: one that sat idle is pinged before it is handed out.

After a database restart or a terminated session every idle connection in a pool is dead, and
psycopg only learns it when a query fails: each one used to cost one later request a 503, minutes
afterwards. A ping on every checkout would find them too, but costs a round trip per read (the
event store's pre-ping cost ~15 ms of wall time per placed order, bench/results/). So only a
connection idle for longer than `IDLE_BEFORE_CHECK` is pinged: a database that restarted was down
longer than that, so every connection it killed has been idle at least as long, while a busy
connection, the common case, goes out as it is. A dead one is discarded by the pool, which tries
the next; a restart then costs at most the requests in flight.

The first dead one found has every other idle connection of the pool checked at once (the pool's
`check`): they died together. Left to be found one by one, each would cost the caller a longer
sleep, as psycopg_pool backs off between failed checks within one `getconn` (0, 1, 2, 4 s...):
a projector whose four sessions were terminated waited 7 s for its next batch, and a checkout
that met five dead ones gave up after its 10 s timeout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

if TYPE_CHECKING:  # a pool's callbacks: psycopg is loaded once a pool calls them
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

IDLE_BEFORE_CHECK = 1.0  # seconds


class IdleCheck:
    """The `check` and `reset` callbacks of one pool: `reset` notes when a connection came back."""

    def __init__(self, idle: float = IDLE_BEFORE_CHECK) -> None:
        self.idle = idle
        self._returned: WeakKeyDictionary[Any, float] = WeakKeyDictionary()
        self.pool: ConnectionPool[Any] | None = None  # the pool of `check`, set once it is made
        self.async_pool: AsyncConnectionPool[Any] | None = None  # the pool of `check_async`

    def _idle(self, conn: Any) -> bool:
        """Whether `conn` sat unused longer than `idle`, or was never handed out (a pool opens its
        first connections at start, and a session cut before their first use kills them unused)."""
        returned = self._returned.get(conn)
        return returned is None or time.monotonic() - returned > self.idle

    def check(self, conn: psycopg.Connection[Any]) -> None:
        if self._idle(conn):
            from psycopg_pool import ConnectionPool

            try:
                ConnectionPool.check_connection(conn)
            except Exception:
                if self.pool is not None:
                    self.pool.check()  # the other idle ones, replaced if dead
                raise

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        self._returned[conn] = time.monotonic()

    async def check_async(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._idle(conn):
            from psycopg_pool import AsyncConnectionPool

            try:
                await AsyncConnectionPool.check_connection(conn)
            except Exception:
                if self.async_pool is not None:
                    await self.async_pool.check()
                raise

    async def reset_async(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._returned[conn] = time.monotonic()
