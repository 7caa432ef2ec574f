"""The relational database beside the event store: pools, transactions, snapshots, sequences,
cross-process locks and LISTEN (`listener`, `ugc/platform/listening.py`), for threads and for coroutines.

The SQL it runs is written once for both dialects (`ugc/platform/dialect.py` adapts it).
"""

from __future__ import annotations

import contextvars
import fcntl
import functools
import logging
import math
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ugc.config import is_postgres, pool_sizes, queue_timeout, read_lock_timeout, read_statement_timeout, sqlite_path
from ugc.platform import sqlite_files
from ugc.platform.blocking import AgedLine
from ugc.platform.dead_connections import again_when_connection_lost, again_when_connection_lost_async
from ugc.platform.dialect import (
    COLUMN_TYPES,
    Cursor,
    Dialect,
    PipelinedCursor,
    Query,
    Row,
    postgres_params,
    psycopg_loaded,
)
from ugc.platform.idle_check import IdleCheck
from ugc.platform.listening import Listener
from ugc.platform.probe_connection import ProbeConnection
from ugc.platform.sqlite_pragmas import READ_SIDE, SQLITE_BUSY_TIMEOUT, configure

if TYPE_CHECKING:  # imported where a process works on PostgreSQL (`ugc.platform.postgres_driver`)
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool


def numbers_in(counts: Mapping[str, int], row: Row) -> tuple[dict[str, list[int]], Row]:
    """The numbers of each kind of `counts` that a `Database.numbers_query` row holds, and its other columns."""
    rest = dict(row)
    return {kind: sorted(rest.pop(f"ugc_next_{index}")) for index, kind in enumerate(counts)}, rest


def _snapshot_query(queries: Sequence[tuple[str, Sequence[Any]]], bound: str) -> tuple[str, list[Any]]:
    """SELECTs as one text between BEGIN and COMMIT, each bounded by `bound`, for `snapshot` on PostgreSQL."""
    statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", bound, *(sql for sql, _ in queries), "COMMIT"]
    return "; ".join(statements), [value for _, params in queries for value in postgres_params(params)]


# Autocommit: a lone read is one round trip; `transaction()` still sends BEGIN/COMMIT.
# Times come back in UTC, as the API writes them (api/responses.py).
# TCP keepalives: a connection to a host that vanished without a reset fails within ~11 s idle
# (5 s, then 3 probes 2 s apart), and one with data unacknowledged for 10 s fails too
# (tcp_user_timeout), not after the kernel's hours. Leases do not depend on it (they expire on the
# database's clock); it frees a vanished client's connections and ends a LISTEN that hears nothing.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
log = logging.getLogger(__name__)

T = TypeVar("T")

# JIT off: our statements are keyed lookups and index-backed pages, a few milliseconds at most,
# where compiling never pays; but JIT compiles any plan whose estimated cost passes jit_above_cost,
# at every execution (prepared or not), and the estimates of keyed statements grow with a table
# never analyzed (autovacuum off, or not yet run):
# a group's load of its orders' streams (a lookup per stream, `ChainedPostgresRecorder.select_streams`)
# passed the threshold at ~60,000 events and took 4-9 ms instead of 0.15, all of it compiling, a
# third of a follow-up command's PostgreSQL time (bench/RESULTS.md, issue 15).
NO_JIT = "-c jit=off"
# The event stores' sessions also plan each prepared statement once (generic plan). Their statements
# are keyed lookups and appends whose plan is the same whatever the values, so a plan made anew for
# each execution (a custom plan) only costs. Left to choose, PostgreSQL kept the custom plan of a
# group's numbers statement (`Database.numbers_query`) at every execution, since its
# generate_series(1, %s) is costed at 1,000 rows without a value and at the few it gives with one:
# 25-90 µs of planning for each group with a follow-up command (pg_stat_statements, issue 15).
# TimeZone=UTC as the read pools have it: the chain's `recorded_at` comes back in the session's zone,
# and a database or role set to another (or PGTZ) made the history say "+05:30" where it says "Z".
# And no statement of theirs waits for a lock longer than STORE_LOCK_TIMEOUT seconds, the bound the
# library sets on an append's table lock: a load behind an operator's `LOCK TABLE`, an `ALTER TABLE`
# or a `VACUUM FULL` of a log waited for as long as that lasted, the request with it (a place held
# 40 s by a 40 s lock), and the worker's threads one by one; it answers 503 instead.
STORE_LOCK_TIMEOUT = 5
STORE_OPTIONS = f"-c TimeZone=UTC {NO_JIT} -c plan_cache_mode=force_generic_plan -c lock_timeout={STORE_LOCK_TIMEOUT}s"


def session() -> dict[str, Any]:
    """psycopg's connection settings of the read pools (with `read_session`'s bound) and the probe."""
    from psycopg.rows import dict_row

    return {"row_factory": dict_row, "autocommit": True, "options": f"-c TimeZone=UTC {NO_JIT}", **KEEPALIVES}


def read_session() -> dict[str, Any]:
    """The read pools' sessions: `session()`, and no statement waiting for a lock longer than
    `UGC_DB_LOCK_TIMEOUT` seconds (READ_LOCK_TIMEOUT, the event stores' bound, unless set).

    A list behind an operator's `LOCK TABLE`, an `ALTER TABLE` or a `VACUUM FULL` of its table waited
    for as long as that lasted, holding its connection and a thread (enough of them, and every request
    hung, and a stop of `ugc serve` with them); it answers 503 instead (LockNotAvailable is an
    OperationalError: `outages.database_away`), and a projection's batch backs off. Our own locks
    are held for milliseconds (a blue/green switch's table locks, a batch's rows); what is meant to
    wait longer says so in its transaction (`wait_for_locks`). Advisory locks taken on a connection of
    their own (`exclusive_lock`, serving_lock.py) wait as long as they need: those sessions are not these.
    """
    bound = round(read_lock_timeout() * 1000)
    settings = session()
    return {**settings, "options": f"{settings['options']} -c lock_timeout={bound}ms"}


# A pipelined transaction is a projection's batch: its statements join the batch's rows (a
# `jsonb_array_elements` of them, which the planner takes for 100 rows whatever their number) to
# read tables by key. Left to itself, the planner hash-joined them with a sequential scan of any
# table of a few thousand rows (an `orders` of 8,000: ~440 pages read by each of 5 statements per
# batch, 6 ms each instead of 0.4, lifecycles halved); a nested loop over the key's index is what
# such a join wants at every size.
KEYED_JOINS = "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"


# SQLite virtual-machine steps between two looks at a read's deadline (`statements_bounded`): well
# under a millisecond of work, and a look costs a Python call.
PROGRESS_STEPS = 10_000
# How long readiness waits for SQLite's write lock: a group's commit holds it for milliseconds, so a
# lock still held after this is somebody else's long transaction.
WRITE_PROBE_WAIT = 0.5


class Database:
    """The read database, for threads (`read`, `transaction`, `snapshot`) and for coroutines
    (`fetch_async`, `snapshot_async`).

    On PostgreSQL a coroutine's reads go over psycopg's asyncio connections, on the event loop:
    handing a read to a thread and back cost more CPU than the read (GIL hand-offs, wake-ups),
    most of a list request's (bench/RESULTS.md). SQLite has no asyncio driver; there they run on
    threads of their own, as many as PostgreSQL's asyncio connections (`UGC_DB_ASYNC_POOL_MAX`), and
    a read that waited for one longer than `UGC_QUEUE_TIMEOUT` is turned away unstarted, `Busy` (503),
    as one that waited that long for a connection of that pool is (`AgedLine`). The loop's default
    executor ran every read however long it had waited: a flood of slow lists made each wait for all
    the others, and went on reading for clients that had given up.
    """

    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        # What a list's page read may cost: each of its statements (a page, its total) is cancelled
        # after UGC_DB_READ_TIMEOUT seconds, and the request answers 503 (QueryCanceled is an
        # OperationalError: `outages.database_away`) instead of holding a connection and the database's
        # CPU for as long as a query the client shaped takes. Set per transaction (`SET LOCAL`), not per
        # session: the same pool runs projections' batches and migrations, which must not be cut short.
        # SQLite has no statement_timeout: its reads are interrupted at the same bound (`statements_bounded`).
        self._page_seconds = read_statement_timeout()
        self.page_bound = f"SET LOCAL statement_timeout = {round(self._page_seconds * 1000)}"
        # The process's one LISTEN connection (PostgreSQL), opened when something subscribes; the
        # owner of the database (the composition root) closes it with the database.
        self.listener = Listener(url, KEEPALIVES)
        self._async_pool: AsyncConnectionPool[Any] | None = None  # opened by the first coroutine that reads
        if is_postgres(url):
            from psycopg_pool import ConnectionPool

            from ugc.platform import postgres_driver  # noqa: F401 - psycopg configured before any connection

            self.dialect = "postgresql"
            idle = IdleCheck()
            self._sizes = pool_sizes()
            self._pool: ConnectionPool[Any] | None = ConnectionPool(
                url,
                min_size=1,
                max_size=self._sizes.database,
                kwargs=read_session(),
                open=True,
                name="ugc-read",
                timeout=queue_timeout(),
                check=idle.check,
                reset=idle.reset,
            )
            idle.pool = self._pool
            # The process's own checks read here, never behind the requests (`probing`).
            self._probe: ProbeConnection | None = ProbeConnection(url, read_session())
        elif url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self._pool = None
            self._probe = None
            self._path = sqlite_path(url)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._local = threading.local()
            self._connections: list[sqlite3.Connection] = []
            self._connections_lock = threading.Lock()
            self._readers = AgedLine(pool_sizes().database_async, queue_timeout(), name="ugc-read-sqlite")
        else:
            raise ValueError(f"unsupported database URL {url!r}")

    @property
    def types(self) -> dict[str, str]:
        return COLUMN_TYPES[self.dialect]

    def _sqlite_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self._path,
                isolation_level=None,
                detect_types=sqlite3.PARSE_DECLTYPES,
                check_same_thread=False,
                timeout=SQLITE_BUSY_TIMEOUT,
            )
            connection.row_factory = sqlite3.Row
            # PostgreSQL's "C", code-point order: lists sorted by a name say COLLATE "C" to come in
            # one order on both backends, whatever the PostgreSQL database's locale.
            connection.create_collation("C", _code_point_order)
            configure(connection, READ_SIDE)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self, *, write: bool = False, pipelined: bool = False) -> Iterator[Cursor]:
        """One transaction: committed when the block ends, rolled back if it raises.

        On SQLite `write=True` takes the write lock up front (BEGIN IMMEDIATE), so a writer never
        fails half way on a lock upgrade. On PostgreSQL `pipelined=True` sends statements without
        waiting for each one's answer until a result is read (psycopg's pipeline mode): a batch
        of writes costs one round trip instead of one each; an error surfaces at the next read
        or at the commit, still inside the transaction.
        """
        if self._pool is not None:
            with self._pool.connection() as conn:
                if pipelined:
                    with conn.pipeline(), conn.transaction():
                        batch = PipelinedCursor(conn)
                        batch.execute(KEYED_JOINS)
                        yield batch
                    return
                with conn.transaction(), conn.cursor() as cur:
                    yield Cursor(cur, "postgresql")
            return
        with sqlite_transaction(self._sqlite_connection(), write=write) as cur:
            yield cur

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """Statements that each stand alone, outside any transaction.

        A lone SELECT is then one round trip instead of BEGIN, SELECT, COMMIT. When several
        statements must see one snapshot (a page and its total), use `transaction()`.
        """
        if self._pool is not None:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield Cursor(cur, "postgresql")
            return
        cursor = self._sqlite_connection().cursor()
        try:
            yield Cursor(cursor, "sqlite")
        finally:
            cursor.close()

    def probing(self, work: Callable[[Cursor], T]) -> T:
        """`work(cursor)` for the process's own checks (/readyz, /metrics): on PostgreSQL on the
        process's one probe connection (`ProbeConnection`: no request holds it, and each statement
        gives up after STATEMENT_TIMEOUT_MS), outside any transaction. On SQLite on the calling
        thread's own connection, as `read`: give it a thread of its own and no request holds it either."""
        if self._probe is None:
            with self.read() as cur:
                return work(cur)

        def on(connection: psycopg.Connection[Any]) -> T:
            with connection.cursor() as raw:
                return work(Cursor(raw, "postgresql"))

        return self._probe.run(on)

    def snapshot(self, *queries: tuple[str, Sequence[Any]]) -> list[list[Row]]:
        """The rows of several SELECTs, all read from one snapshot (`_snapshot`), read again on
        another connection when the pooled one was found dead."""
        return self.again_if_cut(lambda: self._snapshot(*queries))

    def _snapshot(self, *queries: tuple[str, Sequence[Any]]) -> list[list[Row]]:
        """The rows of several SELECTs, all read from one snapshot.

        On PostgreSQL one round trip: a REPEATABLE READ transaction (READ COMMITTED would give each
        statement its own snapshot) sent as one multi-statement query, its parameters bound by the
        client (`ClientCursor`). Measured against pipeline mode for a list's two statements: 0.9
        against 1.4 ms of CPU, psycopg's pipeline machinery being Python. On SQLite a
        transaction's reads share one snapshot already.
        """
        if self._pool is None:
            results = []
            with self.transaction() as cur, statements_bounded(self._sqlite_connection(), self._page_seconds) as begin:
                for sql, params in queries:
                    begin()
                    results.append(cur.execute(sql, params).fetchall())
            return results
        from psycopg import ClientCursor
        from psycopg.rows import dict_row

        sql, params = _snapshot_query(queries, self.page_bound)
        with self._pool.connection() as conn, ClientCursor(conn, row_factory=dict_row) as cur:
            cur.execute(sql, params)
            results = []
            while True:
                if cur.description is not None:
                    results.append(cur.fetchall())
                if not cur.nextset():
                    return results

    async def fetch_async(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of one statement, outside any transaction, for a coroutine."""
        pool = await self._async_connections()
        if pool is None:
            return await self._on_reader(self._fetch, sql, params)

        async def fetch() -> list[Row]:
            async with pool.connection() as conn:
                cur = await conn.execute(sql, postgres_params(params))
                rows: list[Row] = await cur.fetchall()
                return rows

        return await again_when_connection_lost_async(fetch, pool.check)

    async def snapshot_async(self, *queries: tuple[str, Sequence[Any]]) -> list[list[Row]]:
        """`snapshot` for a coroutine."""
        pool = await self._async_connections()
        if pool is None:
            return await self._on_reader(self.snapshot, *queries)
        from psycopg import AsyncClientCursor
        from psycopg.rows import dict_row

        sql, params = _snapshot_query(queries, self.page_bound)

        async def read() -> list[list[Row]]:
            async with pool.connection() as conn, AsyncClientCursor(conn, row_factory=dict_row) as cur:
                await cur.execute(sql, params)
                results = []
                while True:
                    if cur.description is not None:
                        results.append(await cur.fetchall())
                    if not cur.nextset():
                        return results

        return await again_when_connection_lost_async(read, pool.check)

    async def aclose(self) -> None:
        """Close the asyncio connections, on the event loop that opened them."""
        if self._async_pool is not None:
            await self._async_pool.close()

    async def _on_reader(self, read: Callable[..., T], *args: Any) -> T:
        """`read(*args)` on one of SQLite's reader threads (the caller's context with it: its log
        lines name the request), `Busy` if it waited for one longer than UGC_QUEUE_TIMEOUT."""
        return await self._readers.run(functools.partial(contextvars.copy_context().run, read, *args))

    async def _async_connections(self) -> AsyncConnectionPool[Any] | None:
        """The asyncio pool (PostgreSQL only), opened on first use on the running event loop."""
        if self._pool is None:
            return None
        if self._async_pool is None:
            from psycopg_pool import AsyncConnectionPool

            idle = IdleCheck()
            self._async_pool = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self._sizes.database_async,
                kwargs=read_session(),
                open=False,
                name="ugc-read-async",
                # Both pools give up on a connection after UGC_QUEUE_TIMEOUT (PoolTimeout is an
                # OperationalError: 503). psycopg_pool's own 30 s held every list in line for as long
                # as the database stayed slow (tests/test_overload.py).
                timeout=queue_timeout(),
                check=idle.check_async,
                reset=idle.reset_async,
            )
            idle.async_pool = self._async_pool
            # Opened before any other coroutine runs: its lock is free, so open() does not yield first.
            await self._async_pool.open()
        return self._async_pool

    def again_if_cut(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` (a read, or a write that may run twice) again on another connection while
        its pooled one is found dead: a session terminated while its connection sat in the pool is
        found only when a statement fails on it (`IdleCheck` pings only the long idle). The first
        dead one has the pool's idle connections checked: they most likely died together."""
        return again_when_connection_lost(attempt, self._pool.check if self._pool is not None else None)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self.read() as cur:
            return cur.execute(sql, params).fetchall()

    def next_number(self, kind: str) -> int:
        """The next public id of `kind`, from a database sequence (gaps are possible)."""
        return self.next_numbers(kind, 1)[0]

    def next_numbers(self, kind: str, count: int) -> list[int]:
        """`count` fresh public ids of `kind` in one round trip, each unique, increasing.

        One statement, atomic on its own: no transaction around it.
        """
        return self.next_numbers_of({kind: count})[kind]

    def next_numbers_of(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        """`next_numbers` for each kind of `counts`: one round trip on PostgreSQL (`numbers_query`,
        for a caller that has other columns to read with them). SQLite takes each kind apart."""
        query = self.numbers_query(counts)
        if query is None:
            return {kind: self._counted_up(kind, count) for kind, count in counts.items()}

        def drawn() -> dict[str, list[int]]:
            with self.read() as cur:
                row = cur.execute(*query).fetchone()
            assert row is not None
            return numbers_in(counts, row)[0]

        return self.again_if_cut(drawn)  # a value drawn on a session that died is a gap

    def numbers_query(self, counts: Mapping[str, int], columns: str = "") -> Query | None:
        """The one SELECT of `next_numbers_of`, for a caller that reads it in a round trip it makes
        anyway (on any connection to this database), its row then read by `numbers_in`; None on
        SQLite, whose sequences are rows to update."""
        if self.dialect != "postgresql":
            return None
        arrays = [
            f"ARRAY(SELECT nextval('{sequence_name(kind)}') FROM generate_series(1, %s)) AS ugc_next_{index}"
            for index, kind in enumerate(counts)
        ]
        selected = ", ".join(filter(None, [columns, *arrays]))
        return f"SELECT {selected}", tuple(max(count, 0) for count in counts.values())

    def _counted_up(self, kind: str, count: int) -> list[int]:
        """SQLite's sequences: one row of `id_sequences` per kind, its last id taken."""
        if count < 1:
            return []
        with self.read() as cur:
            row = cur.execute(
                "INSERT INTO id_sequences (kind, value) VALUES (%s, %s) "
                "ON CONFLICT (kind) DO UPDATE SET value = id_sequences.value + excluded.value RETURNING value",
                (kind, count),
            ).fetchone()
        assert row is not None
        last = int(row["value"])
        return list(range(last - count + 1, last + 1))

    def create_sequence(self, cur: Cursor, kind: str) -> None:
        if self.dialect == "postgresql":
            cur.execute(f"CREATE SEQUENCE IF NOT EXISTS {sequence_name(kind)}")

    @contextmanager
    def exclusive_lock(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """A lock held across processes for the block: a PostgreSQL advisory lock, or a file lock.

        With `wait=False` the block runs at once and receives whether the lock was taken.
        """
        if self.dialect == "postgresql":
            from ugc.platform.postgres_driver import psycopg

            key = self.lock_key(name)
            with psycopg.connect(self.url, autocommit=True, **KEEPALIVES) as conn:
                if wait:
                    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                    taken = True
                else:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    taken = bool(row and row[0])
                try:
                    yield taken
                finally:
                    if taken:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return
        with open(self.lock_path(name), "a+") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = True
            except BlockingIOError:
                taken = False
            try:
                yield taken
            finally:
                if taken:
                    fcntl.flock(file, fcntl.LOCK_UN)

    def lock_path(self, name: str) -> Path:
        """SQLite: the file whose lock is `exclusive_lock(name)`'s."""
        return Path(f"{self._path}.{_identifier(name)}.lock")

    @staticmethod
    def lock_key(name: str) -> int:
        """PostgreSQL: the advisory lock key of `exclusive_lock(name)`."""
        return zlib.crc32(name.encode())

    def vacuum(self, *tables: str) -> None:
        """On PostgreSQL, VACUUM `tables` now: rows updated or deleted leave their old versions on
        their pages until then. On SQLite `secure_delete` zeroes them as they go, but in the pages the
        write-ahead log holds: the file keeps its own copies of those pages until a checkpoint writes
        them back (SQLite's own, every 1,000 pages), so the log is checkpointed and emptied now (as
        far as readers under way let it: the next checkpoint finishes)."""
        if self._pool is None:
            self._sqlite_connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        with self._pool.connection() as conn:
            conn.autocommit = True
            # An erasure's cleanup, run by an operator: it waits for whatever holds its tables (another
            # VACUUM, an ALTER) rather than fail past its bound (`read_session`). VACUUM runs outside any
            # transaction, so the session's setting is changed, and restored before the pool has it back.
            conn.execute("SET lock_timeout = 0")
            try:
                for table in tables:
                    conn.execute(f"VACUUM {_identifier(table)}")
            finally:
                conn.execute("RESET lock_timeout")

    def ping(self) -> str | None:
        """Reach the database (raises if it cannot), on the probe connection (`probing`); why a write
        would fail now, None if it would not.

        A PostgreSQL standby (a failover not promoted yet) or a database set
        `default_transaction_read_only` answers every read and refuses every write: "read-only". On
        SQLite the file system may refuse the files' writes ("disk full", "read-only":
        `sqlite_files.refusal`), or another process (an operator's `sqlite3` shell, a backup) may
        hold the file's one write lock: every write waits for it, then fails. The write lock is taken
        and let go at once to know ("write lock held elsewhere"), waiting for it no longer than
        WRITE_PROBE_WAIT.
        """
        if self.dialect == "sqlite":
            return sqlite_files.refusal(self._path) or self._sqlite_write_probe()

        def read_only(cur: Cursor) -> bool:
            row = cur.execute("SELECT current_setting('transaction_read_only') = 'on' AS read_only").fetchone()
            return row is not None and bool(row["read_only"])

        return "read-only" if self.probing(read_only) else None

    def _sqlite_write_probe(self) -> str | None:
        """Take and let go each file's write lock: the read side's and every event store's, whose lock
        held elsewhere makes its context's commands wait and answer 503 just the same (readiness took
        the read side's alone). Waiting WRITE_PROBE_WAIT at most, for all the files together."""
        deadline = time.monotonic() + WRITE_PROBE_WAIT
        for path in sqlite_files.files_of(self._path):
            if not path.exists():
                continue
            connection = self._sqlite_connection() if path == self._path else self._store_probe(path)
            wait = max(deadline - time.monotonic(), 0.0)
            connection.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                code = error.sqlite_errorcode & 0xFF
                if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    return "write lock held elsewhere"
                if code == sqlite3.SQLITE_READONLY:
                    return "read-only"
                raise
            finally:
                connection.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
        return None

    def _store_probe(self, path: Path) -> sqlite3.Connection:
        """This thread's connection to an event store's file, for its write probe alone (readiness runs
        on a thread of its own)."""
        probes: dict[Path, sqlite3.Connection] | None = getattr(self._local, "store_probes", None)
        if probes is None:
            probes = self._local.store_probes = {}
        connection = probes.get(path)
        if connection is None:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            probes[path] = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        self.listener.close()
        if self._probe is not None:
            self._probe.close()
        if self._pool is not None:
            self._pool.close()
            return
        self._readers.shutdown()
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


@contextmanager
def reading(source: Database | Cursor) -> Iterator[Cursor]:
    """A cursor for reads that stand alone: `source.read()`'s, or `source` itself when it is a cursor
    the caller holds already (`Database.probing`'s, for the process's own checks)."""
    if isinstance(source, Cursor):
        yield source
        return
    with source.read() as cur:
        yield cur


@contextmanager
def sqlite_transaction(connection: sqlite3.Connection, *, write: bool) -> Iterator[Cursor]:
    """One transaction on `connection`: BEGIN IMMEDIATE takes the write lock up front when `write`
    (a lock upgraded half way through could fail), committed if the block ends well."""
    cursor = connection.cursor()
    cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield Cursor(cursor, "sqlite")
    except BaseException:
        connection.rollback()
        raise
    else:
        connection.commit()
    finally:
        cursor.close()


@contextmanager
def statements_bounded(connection: sqlite3.Connection, seconds: float) -> Iterator[Callable[[], None]]:
    """SQLite's `statement_timeout` for the block: a statement begun after a call of the function it
    yields is interrupted once it has run `seconds` (SQLITE_INTERRUPT, an outage: 503), as PostgreSQL
    cancels a page read's statement at UGC_DB_READ_TIMEOUT (`Database.page_bound`)."""
    deadline = math.inf

    def begin() -> None:
        nonlocal deadline
        deadline = time.monotonic() + seconds

    connection.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
    try:
        yield begin
    finally:
        connection.set_progress_handler(None, 0)


def wait_for_locks(cur: Cursor) -> None:
    """Let the rest of `cur`'s transaction wait for locks as long as they are held (PostgreSQL), past
    the bound of `read_session`: for work that must not fail for a lock it would get later."""
    if cur.dialect == "postgresql":
        cur.execute("SET LOCAL lock_timeout = 0")


def sequence_name(kind: str) -> str:
    """PostgreSQL's sequence of the public ids of `kind`."""
    return f"ugc_seq_{_identifier(kind)}"


def _identifier(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name.lower())
    if not cleaned or cleaned[0].isdigit():
        raise ValueError(f"not usable as an identifier: {name!r}")
    return cleaned


START_BACKOFF = (0.5, 5.0)  # first and longest pause between attempts to reach the database at start


# A connection string libpq cannot read ('port=notaport'): waiting will not change it.
_UNREADABLE_CONNINFO = re.compile(r"invalid .* (value|option)|missing \"=\" after")
# No such database (3D000), no such role or no pg_hba.conf entry for it (28000), a wrong password
# (28P01): a mistyped URL, for a person at a terminal, but for a deployment's processes perhaps a
# database or role its init is still making (tests/test_connection_budget.py). libpq keeps no
# SQLSTATE for a connection refused at start-up (psycopg's error then has none), so the server's
# words are read too, in English (lc_messages); worded otherwise, such an error is waited for.
_ABSENT_SQLSTATES = frozenset({"3D000", "28000", "28P01"})
_ABSENT = re.compile(
    r'FATAL:\s+((database|role) ".*" does not exist|password authentication failed|no pg_hba\.conf entry)'
)


def _lasting(error: Exception) -> bool:
    import psycopg  # `error` is one of psycopg's (`_not_connected`)

    return isinstance(error, psycopg.ProgrammingError) or bool(_UNREADABLE_CONNINFO.search(str(error)))


def _not_connected() -> tuple[type[Exception], ...]:
    """psycopg's errors of a connection not had, or of a pool that found none in time: none where
    psycopg is not loaded (a process on SQLite), as no attempt there can raise them."""
    if not psycopg_loaded():
        return ()
    import psycopg
    from psycopg_pool import PoolTimeout

    return (psycopg.OperationalError, PoolTimeout)


def absent(error: Exception) -> bool:
    """Whether the server refused `error`'s connection for a database, role or password it does not have."""
    sqlstate = getattr(error, "sqlstate", None) or getattr(getattr(error, "diag", None), "sqlstate", None)
    return sqlstate in _ABSENT_SQLSTATES or bool(_ABSENT.search(str(error)))


def until_reachable(attempt: Callable[[], T], *, what: str, timeout: float = 120.0, await_creation: bool = False) -> T:
    """Run `attempt` (a process's first use of the database) until it does not fail for want of a
    connection: a database that restarts, or is full ("too many clients"), delays a start rather
    than ends it. Backs off from 0.5 s to 5 s; gives up after `timeout` seconds.

    A database, role or password the server does not have ends it at once, but with
    `await_creation` (the long-running processes a deployment starts, `serve` and `project`)."""
    deadline = time.monotonic() + timeout
    pause, longest = START_BACKOFF
    while True:
        try:
            return attempt()
        except _not_connected() as error:
            if time.monotonic() + pause > deadline or _lasting(error) or (absent(error) and not await_creation):
                raise
            log.warning(
                "%s: the database of UGC_DATABASE_URL is not reachable (%s); trying again in %.1f s", what, error, pause
            )
            time.sleep(pause)
            pause = min(longest, pause * 2)


def _code_point_order(first: str, second: str) -> int:
    return (first > second) - (first < second)
