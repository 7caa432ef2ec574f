"""Blue/green rebuilds: new tables built beside the live ones, then switched in one transaction.

1. A scratch set (projections/scratch.py) gets empty tables of the projections.
2. The replay (projections/replay.py) fills them from position 0, chasing the positions the live
   tables stand at, while the live runner keeps applying new events to the live tables and the API
   keeps reading them.
3. The switch, one transaction: lock the live projections' tracking rows (the live runner's next
   batch of them waits; on SQLite the write lock does it), replay the few events the live tables
   got since, up to exactly the positions they stand at (on PostgreSQL committed apart, before the
   table locks: see `_catch_up_and_switch`), then put the new tables in place of the old
   (PostgreSQL: DROP the old, SET SCHEMA the new; SQLite: the rows replaced) and store the
   projections' versions. The positions stay what they were, so the live runner goes on from
   there with its own pushes: nothing applied meanwhile is lost, nothing is pushed twice or never.
   (A replay never stops short of the head it found: where no live runner keeps up, the switch
   moves the positions forward to it, and those events' rows are pushed by no one: the runner that
   next applies the projection goes on from positions it did not commit (`Projection.resumed`), and
   every notification socket reads again what was stored after what it sent.)

Readers see the old tables or the new ones, never a partial one; commands wait at most for the
switch. An interruption before the switch leaves the live tables as they were (the scratch set is
dropped on the way out, or swept by the next run after a crash).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

from projections.base import Projection
from projections.grants import grant_as_live
from projections.leasing import LeaseKeeper
from projections.replay import BATCH_SIZE, Advanced, Positions, Replay
from projections.scratch import ScratchSet
from readmodels import tracking, versions
from ugc.platform import leases
from ugc.platform.backoff import doubling
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, psycopg_errors
from ugc.platform.outages import database_away
from ugc.platform.store import EventStores

log = logging.getLogger(__name__)


SWITCH_ATTEMPTS = 100
LOCK_WAIT_MS = 150  # below PostgreSQL's deadlock_timeout (1 s): see `_switch`


SNAPSHOT_WAIT = 0.15  # seconds the switch waits for older transactions before it gives way and tries again
# Seconds between a runner's looks for leases of read models it acquired (whose stored version may
# not be its code's), and at most between the tries of such a rebuild that failed.
UPGRADE_CHECK = 0.5
UPGRADE_BACKOFF = 60.0

# Raises unless the switch may still commit (`leases.fence` of the leases it needs), in its transaction.
Fence = Callable[[Cursor], None]


class OlderSnapshots(RuntimeError):
    """Transactions that began before the switch's last replay commit are still running."""


class RebuildRunning(RuntimeError):
    """Another process is rebuilding one of the projections."""


class Interrupted(RuntimeError):
    """The rebuild was asked to stop; the live tables are as they were."""


def rebuild(
    db: Database,
    stores: EventStores,
    projections: Sequence[Projection],
    *,
    advanced: Advanced | None = None,
    stop: threading.Event | None = None,
    batch_size: int = BATCH_SIZE,
) -> Positions:
    """Rebuild `projections` (fresh instances, read models only) blue/green; the positions switched at."""
    with rebuild_locks(db, [p.name for p in projections]):
        return _rebuild(db, stores, projections, advanced, stop, batch_size, None)


@contextmanager
def rebuild_locks(db: Database, names: Sequence[str]) -> Iterator[None]:
    """One rebuild of a projection at a time (across processes); RebuildRunning when one runs already."""
    with ExitStack() as stack:
        for name in sorted(names):
            if not stack.enter_context(db.exclusive_lock(f"rebuild {name}", wait=False)):
                raise RebuildRunning(f"a rebuild of {name} is running already")
        yield


def _rebuild(
    db: Database,
    stores: EventStores,
    projections: Sequence[Projection],
    advanced: Advanced | None,
    stop: threading.Event | None,
    batch_size: int,
    fence: Fence | None,
) -> Positions:
    def told(events: int) -> None:
        if advanced is not None:
            advanced(events)
        if stop is not None and stop.is_set():
            raise Interrupted("the rebuild was stopped before its switch; the live tables are unchanged")

    tables = [table for p in projections for table in p.tables]
    later = [table for p in projections if p.indexed_after_replay for table in p.tables]
    with ScratchSet.made(db, tables, indexed_later=later) as scratch:
        replay = Replay(scratch, stores, projections, batch_size=batch_size, advanced=told)
        # At least the head as the rebuild found it, even where no live runner moves the positions;
        # but only in the switch, while the live runner waits: past the live positions the replay
        # gives new notifications their `seq`, which the live runner must not be giving at once.
        heads = stores.heads()
        floor = {(p.name, app): heads[app] for p in projections for app in p.applications}
        # Chase the live positions until what is left fits a batch: the switch applies that much
        # while the live runner of these projections waits.
        while replay.run_to(live_positions(db, projections)) >= batch_size:
            pass
        scratch.index()
        scratch.analyze()
        for attempt in range(1, SWITCH_ATTEMPTS + 1):
            try:
                reached = _catch_up_and_switch(db, scratch, replay, projections, floor, fence)
            except psycopg_errors("QueryCanceled", "LockNotAvailable") + (OlderSnapshots,) as error:
                log.warning("the switch gave way to readers (attempt %d): %s", attempt, " ".join(str(error).split()))
                # A reader held a table past the switch's lock wait (see `_switch`), or an older
                # transaction ran on (`_wait_for_older_snapshots`): rolled back, tried again.
                if attempt == SWITCH_ATTEMPTS:
                    raise
                time.sleep(min(0.05 * attempt, 0.5))
                continue
            return reached
        raise AssertionError("unreachable")


def _catch_up_and_switch(
    db: Database,
    scratch: ScratchSet,
    replay: Replay,
    projections: Sequence[Projection],
    floor: Positions,
    fence: Fence | None,
) -> Positions:
    """Hold the live projections where they stand, replay the scratch set up to there, switch
    (with `fence`, only if it passes in the switch's transaction).

    PostgreSQL: the rows the replay adds here are committed (on other connections) before the
    switch takes its table locks. A reader whose statement took its snapshot before the switch
    committed, and then waited for its locks, reads the new table with that snapshot: rows written
    by the switch's own transaction would be missing for it. SQLite: one transaction of the scratch
    connection, which holds both files' write lock (a reader's snapshot is of the whole file).
    """
    if db.dialect == "postgresql":
        with db.transaction(write=True) as cur:
            # Every lock this transaction waits for, it waits for less than PostgreSQL's deadlock_timeout
            # (1 s): in a deadlock with the live runner (whose batch locks the same tracking rows), it is
            # the switch that gives way and tries again, never the runner's batch that is aborted.
            cur.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
            live = live_positions(db, projections, cur=cur)
            reached = _at_least(_at_least(live, replay.reached), floor)
            replay.run_to(reached)
            _wait_for_older_snapshots(cur)
            if fence is not None:
                fence(cur)
            _switch(cur, scratch, projections, live, reached)
            tracking.announce(cur)
        return reached
    with scratch.transaction(write=True) as cur:
        live = live_positions(db, projections, cur=cur, schema=scratch.live)
        reached = _at_least(_at_least(live, replay.reached), floor)
        replay.run_to(reached, cur)
        if fence is not None:
            fence(cur)  # unqualified, the live `leases`: the scratch file has none
        _switch(cur, scratch, projections, live, reached)
    for projection in projections:
        projection.committed()
    return reached


def _wait_for_older_snapshots(cur: Cursor) -> None:
    """Wait until no other transaction of the database began before now (PostgreSQL).

    DROP and SET SCHEMA are not MVCC-safe: a REPEATABLE READ reader takes its snapshot before it
    asks for its table locks, so one that took it before the replay's last commit, and reaches a
    switched table only after the switch, would read the new table without that commit's rows. A
    transaction that began after the replay's last commit cannot have such a snapshot. The live
    runner's batch, waiting for the tracking rows this transaction holds, is left out: READ
    COMMITTED, its later statements take snapshots of their own.
    """
    since = cur.execute("SELECT clock_timestamp() AS now").fetchone()
    assert since is not None
    deadline = time.monotonic() + SNAPSHOT_WAIT
    while True:
        cur.execute("SELECT pg_stat_clear_snapshot()")  # pg_stat_activity is read once per transaction otherwise
        older = cur.execute(
            "SELECT pid, state, left(query, 80) AS query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle' AND xact_start < %s "
            "AND NOT pg_backend_pid() = ANY (pg_blocking_pids(pid))",
            (since["now"],),
        ).fetchall()
        if not older:
            return
        if time.monotonic() > deadline:
            raise OlderSnapshots(f"transactions older than the switch still ran after {SNAPSHOT_WAIT} s: {older[:3]}")
        time.sleep(0.002)


def _at_least(positions: Positions, floor: Positions) -> Positions:
    return {key: max(position, floor[key]) for key, position in positions.items()}


def live_positions(
    db: Database, projections: Sequence[Projection], *, cur: Cursor | None = None, schema: str = ""
) -> Positions:
    """Where the live tables of `projections` stand; with `cur`, read in its transaction and locked
    until it ends (rows taken in (projection, application) order, as the live runner takes them)."""
    names = sorted({p.name for p in projections})
    marks = ", ".join(["%s"] * len(names))
    table = f"{schema}.projection_tracking" if schema else "projection_tracking"
    sql = (
        f"SELECT projection, application, position FROM {table} WHERE projection IN ({marks}) "
        "ORDER BY projection, application"
    )
    if cur is None:
        with db.read() as reader:
            rows = reader.execute(sql, names).fetchall()
    else:
        rows = cur.execute(sql + (" FOR UPDATE" if cur.dialect == "postgresql" else ""), names).fetchall()
    found = {(row["projection"], row["application"]): int(row["position"]) for row in rows}
    return {(p.name, app): found.get((p.name, app), 0) for p in projections for app in p.applications}


def _switch(
    cur: Cursor, scratch: ScratchSet, projections: Sequence[Projection], live: Positions, reached: Positions
) -> None:
    """Put the scratch tables in place of the live ones, move the positions from `live` to
    `reached` (where the replay went past a lagging live projection), and store the versions."""
    if cur.dialect == "postgresql" and scratch.tables:
        # A table's grants go with it: the new tables get the live ones' (projections/grants.py), read
        # before the live tables are locked, so that the lock is held for the DROPs and moves alone.
        grant_as_live(cur, scratch)
        # All the live tables at once, before the first DROP, and for a bounded time: a reader's
        # transaction that read one of them and then waits for another (a list and its count)
        # would otherwise deadlock with the switch, and the deadlock detector (after 1 s) may pick
        # the reader. Waiting less than that, the switch gives way and tries again.
        cur.execute(f"SET LOCAL statement_timeout = {LOCK_WAIT_MS}")
        listed = ", ".join(f"{scratch.live}.{_quote(table)}" for table in scratch.tables)
        cur.execute(f"LOCK TABLE {listed} IN ACCESS EXCLUSIVE MODE")
        cur.execute("SET LOCAL statement_timeout = 0")
    for table in scratch.tables:
        name = _quote(table)
        if cur.dialect == "postgresql":
            cur.execute(f"DROP TABLE {scratch.live}.{name}")
            cur.execute(f"ALTER TABLE {scratch.scratch}.{name} SET SCHEMA {scratch.live}")
        else:
            columns = ", ".join(_quote(c) for c in scratch.columns(cur, scratch.scratch, table))
            cur.execute(f"DELETE FROM {scratch.live}.{name}")
            cur.execute(f"INSERT INTO {scratch.live}.{name} ({columns}) SELECT {columns} FROM {scratch.scratch}.{name}")
    for (name, application), position in reached.items():
        if position != live[(name, application)]:
            # Unqualified: the scratch set has no tracking table, so it is the live one on either dialect.
            tracking.advance(cur, application, [name], live[(name, application)], position)
    for projection in projections:
        versions.record(cur, projection.name, projection.version, schema=scratch.live)


def outdated(db: Database, projections: Sequence[Projection]) -> list[Projection]:
    """The read models whose stored version is not the declared one (none stored: taken as built by
    this code, as `ProjectionRunner.register` records it)."""
    stored = versions.stored(db)
    return [p for p in projections if p.read_model and stored.get(p.name, p.version) != p.version]


def rebuild_outdated(
    db: Database,
    stores: EventStores,
    fresh: Callable[[], Sequence[Projection]],
    stop: threading.Event,
    advanced: Advanced | None = None,
    fence: Fence | None = None,
) -> list[str]:
    """Rebuild blue/green every read model of `fresh()` whose stored version is not the one its code
    declares (with `fence`, switched only while it passes); the names rebuilt. `fresh` makes
    projections apart from the live runner's. Another process rebuilding them already is left to it."""
    due = outdated(db, fresh())
    if not due:
        return []
    names = [p.name for p in due]
    try:
        with rebuild_locks(db, names):
            # What another process finished while this one looked is not rebuilt again.
            due = outdated(db, [p for p in fresh() if p.name in names])
            if due:
                _rebuild(db, stores, due, advanced, stop, BATCH_SIZE, fence)
    except RebuildRunning:
        return []
    return [p.name for p in due]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class VersionUpgrade:
    """A runner's companion thread: rebuilds blue/green the read models whose leases its runner holds
    and whose stored version is not the one its code declares, each switch fenced by those leases.

    At start that is an upgrade (or a rollback); later, a read model taken over from a process of
    another version that stopped. The balance gives a read model only to the processes whose code
    has its newest version (projections/leasing.py `assign`), and the switch commits only while its
    leases are this process's: in a rolling deploy the older processes, which let the lease go, write
    nothing into the tables of the newer version (their batches are fenced by the same leases).
    Stopped with the runner; a rebuild stopped before its switch leaves the live tables as they were.
    """

    def __init__(
        self,
        db: Database,
        stores: EventStores,
        fresh: Callable[[], Sequence[Projection]],
        keeper: Callable[[], LeaseKeeper | None],
    ) -> None:
        self._db = db
        self._stores = stores
        self._fresh = fresh
        self._keeper = keeper  # the runner's, once it has started
        self._seen: dict[str, int] = {}  # read model -> the lease token under which its version was its code's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projection-upgrade", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                rebuilt = self._rebuild_held()
            except Interrupted:
                log.info("the rebuild for this version stopped with the runner; the next start does it")
                return
            except leases.LeaseLost as lost:
                log.info("a rebuild for this version gave way: %s; it starts again once the leases are back", lost)
            except Exception as error:
                failures += 1
                if database_away(error):  # not the rebuild's fault: one line, tried again
                    log.warning("a rebuild for this version waits: database unavailable (%s)", error)
                else:
                    log.exception("rebuilding projections of another version failed; the live tables are unchanged")
            else:
                if rebuilt:
                    log.info("rebuilt %s for their version in this code (blue/green)", ", ".join(rebuilt))
                # Still another version's (another process rebuilds it, and may give way): looked at
                # again less and less often, as after a failure.
                failures = failures + 1 if self._unseen() else 0
            self._stop.wait(doubling(UPGRADE_CHECK, UPGRADE_BACKOFF, failures))

    def _unseen(self) -> dict[str, int]:
        """The read models this process holds under a token whose stored version it has not found its
        code's: lease name -> token."""
        keeper = self._keeper()
        if keeper is None:
            return {}
        held = keeper.held().items()
        return {name: token for name, token in held if name in keeper.versions and self._seen.get(name) != token}

    def _rebuild_held(self) -> list[str]:
        """Rebuild the read models whose leases this process acquired since it last looked (a new
        token: at start, or taken over) and whose stored version is not this code's (`register` stored
        one for each); the names rebuilt. One whose stored version stays another (its rebuild failed,
        or another process's runs) is looked at again next time."""
        keeper = self._keeper()
        new = self._unseen()
        if keeper is None or not new:
            return []
        declared = keeper.versions
        stored = versions.stored(self._db)
        due = {name for name in new if stored.get(name, declared[name]) != declared[name]}
        rebuilt = []
        if due:
            tokens = {name: new[name] for name in due}
            rebuilt = rebuild_outdated(
                self._db,
                self._stores,
                lambda: [p for p in self._fresh() if p.name in due],
                self._stop,
                fence=lambda cur: leases.fence(cur, keeper.holder, tokens),
            )
            stored = versions.stored(self._db)
        self._seen.update((name, token) for name, token in new.items() if stored.get(name) == declared[name])
        return rebuilt
