"""This process's share of the projections' leases: acquired, renewed, balanced, given up.

Every process that runs projections (`ugc project`, or `ugc serve` inline) keeps one `LeaseKeeper`.
Each tick (TICK) it says it is alive and which leases it runs with their weights (the projections'
declared cost), renews what it holds, and takes or gives leases until it holds what the balance
(`assign`) gives it: heaviest first, each to the member that runs it with the least weight so far,
a read model only to the members whose code has its newest version. Every member computes the
same balance from the same rows, so a lease moves only when members come or go. A member that
stops ticking — dead, frozen, cut off — loses its leases TTL seconds after its last renewal; the
others' next tick takes them over, so a projection is without a runner for at most TTL + TICK (+ a
batch). A lease nobody took for TTL after it lapsed (members that disagree on the balance: another
version's weights) is taken by whoever runs it. The runner applies only what the keeper holds, and
each batch checks its lease again in its own transaction (`leases.fence`).

A server that runs no projection (`UGC_PROJECTIONS=external`) keeps one with no lease, only to be a
live member: the throttle counts a sign-in in flight only while its process is one (api/throttle.py).
It takes no claim against an older version's leader (`LegacyLeader`), as it runs nothing such a
leader runs; and a keeper kept from its leases by such a leader still attends, running none.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from ugc.platform import leases
from ugc.platform.database import KEEPALIVES, Database
from ugc.platform.dialect import Cursor, psycopg_errors

if TYPE_CHECKING:  # PostgreSQL's alone: imported where it connects (`ugc.platform.postgres_driver`)
    import psycopg

log = logging.getLogger(__name__)

# A lease lasts TTL seconds past its last renewal, renewed every TICK: a renewal may come up to
# TTL - TICK = 2.5 s late (a loaded machine, a GC pause) before the lease lapses, and a standby
# takes a dead or frozen holder's projections over 3-3.5 s after its last renewal.
TTL = 3.0
TICK = 0.5
# How soon the keeper ticks again while another member still holds a lease the balance gives it
# (that member gives it up after its batch): a new member has its share within a batch or so.
WANTING_TICK = 0.1
# The keeper's statements never queue long behind a lock (an acquisition waits for the batches its
# lease's previous holder has open, `leases.fence`): better one tick skipped than renewals late.
KEEPER_OPTIONS = "-c lock_timeout=500 -c TimeZone=UTC"


def assign(members: Mapping[str, leases.Member]) -> dict[str, str]:
    """Lease name -> the member that should hold it, from each member's leases, their weights and the
    versions of its read models' code.

    Heaviest first (then by name), each to the member that runs it with the least weight assigned so
    far (then the first by name): the longest-processing-time rule, within 4/3 of the best split.
    A read model goes only to a member whose code has its newest version among the members: in a
    rolling deploy the older processes hand it over to the newer ones, which rebuild it for their
    version (`projections/bluegreen.py`), and the older code never writes into the tables built by
    the newer. When no newer member is left (a rollback), the older ones run it again.
    """
    weights: dict[str, float] = {}
    for member in members.values():
        for name, weight in member.weights.items():
            weights[name] = max(weight, weights.get(name, weight))
    load = dict.fromkeys(members, 0.0)
    owners: dict[str, str] = {}
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        running = {holder: member.versions.get(name, 0) for holder, member in members.items() if name in member.weights}
        newest = max(running.values())
        owner = min((holder for holder, version in running.items() if version == newest), key=lambda m: (load[m], m))
        owners[name] = owner
        load[owner] += weights[name]
    return owners


def holder_id() -> str:
    """A name unique to this process, short enough for a session's application_name."""
    host = re.sub(r"[^A-Za-z0-9.-]", "", socket.gethostname())[:24] or "host"
    return f"{host}/{os.getpid()}/{secrets.token_hex(3)}"


# The lock that versions before leases elected their one projection runner with (an exclusive
# `Database.exclusive_lock`). Every keeper holds a shared claim on it: while one does, no process of
# such a version can lead; while one of them leads, no keeper takes a lease (the two would apply the
# same events, each in its own way, to the same tables: a rolling deploy from such a version).
LEGACY_LEADER_LOCK = "projection-runner"


class LegacyLeader:
    """Whether a process of a version before leases runs the projections, and the claim that keeps
    one from starting to: a shared advisory lock (PostgreSQL, on the keeper's own connection) or a
    shared file lock (SQLite)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._file: IO[str] | None = None
        self._claimed_on: object | None = None  # the keeper connection that holds the claim
        self._warned = False

    def absent(self, cur: Cursor, connection: object | None) -> bool:
        """True once this process holds the claim (kept from then on); False while an older leader runs."""
        if self.db.dialect == "postgresql":
            if self._claimed_on is not connection:
                row = cur.execute(
                    "SELECT pg_try_advisory_lock_shared(%s) AS taken", (self.db.lock_key(LEGACY_LEADER_LOCK),)
                ).fetchone()
                if row is not None and row["taken"]:
                    self._claimed_on = connection
        elif self._file is None:
            file = open(self.db.lock_path(LEGACY_LEADER_LOCK), "a+")  # held until `release`
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
            else:
                self._file = file
        claimed = self._claimed_on is not None if self.db.dialect == "postgresql" else self._file is not None
        if not claimed and not self._warned:
            log.warning(
                "a process of an older version (before leases) runs the projections on this database; "
                "this one takes no lease until it stops (stop it to finish the upgrade)"
            )
        self._warned = not claimed
        return claimed

    def release(self, cur: Cursor | None = None, connection: object | None = None) -> None:
        """Let the claim go; on PostgreSQL at once when `cur` is of `connection`, the one that holds it.
        Closing that connection lets it go too, but only once the server has seen the session end, a
        moment later: an older process's leader starting right after the stop found it still held."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if cur is not None and connection is not None and self._claimed_on is connection:
            cur.execute("SELECT pg_advisory_unlock_shared(%s)", (self.db.lock_key(LEGACY_LEADER_LOCK),))
        self._claimed_on = None


class LeaseKeeper:
    def __init__(
        self,
        db: Database,
        names: Sequence[str],
        *,
        weights: Mapping[str, float] | None = None,
        versions: Mapping[str, int] | None = None,
        holder: str | None = None,
        ttl: float = TTL,
        tick: float = TICK,
        changed: Callable[[], object] = lambda: None,
    ) -> None:
        self.db = db
        self.names = sorted(names)
        # What each lease costs to run, relatively (1 when not said): the balance between members.
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in self.names}
        # The version of each read model's code (`Projection.version`): the balance gives a read model
        # only to the members with its newest.
        self.versions = dict(versions or {})
        self.holder = holder or holder_id()
        self.ttl = ttl
        self.tick_every = tick
        self.changed = changed  # called when the leases held change (the runner wakes up)
        self._held: dict[str, int] = {}  # name -> token
        self._busy: set[str] = set()  # leases a batch of this process is using: never given up meanwhile
        self._leaving: set[str] = set()  # held, but the balance gives them to another: no new batch on them
        self._wanting = False  # the balance gives this member a lease another still holds
        self._wake = threading.Event()  # tick now: a batch on a leaving lease ended, or stopping
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: psycopg.Connection[dict[str, object]] | None = None
        self._ensured = False  # the lease rows exist (made at the first tick that reaches the database)
        self._legacy = LegacyLeader(db)

    def held(self) -> dict[str, int]:
        """The leases to run now, name -> fencing token (a copy): not those being given up."""
        with self._lock:
            return {name: token for name, token in self._held.items() if name not in self._leaving}

    @contextmanager
    def using(self, names: Sequence[str]) -> Iterator[None]:
        """Hold `names` for one batch: the keeper gives none of them up for the balance until it ends
        (a side effect would otherwise be done here and again by the next holder). LeaseLost if one
        is no longer held."""
        with self._lock:
            missing = [name for name in names if name not in self._held]
            if missing:
                raise leases.LeaseLost(self.holder, missing)
            self._busy.update(names)
        try:
            yield
        finally:
            with self._lock:
                self._busy.difference_update(names)
                if self._leaving.intersection(names):
                    self._wake.set()  # give it up now, not at the next tick

    def lost(self, names: Sequence[str]) -> None:
        """Forget leases a batch found lost; the next tick may acquire them again, with a new token."""
        with self._lock:
            for name in names:
                self._held.pop(name, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and give every lease up at once, so another member need not wait for expiry."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self._cursor() as cur:
                leases.leave(cur, self.holder)
                self._legacy.release(cur, self._connection)
        except Exception as error:  # the database away or the table locked: they lapse, as a crashed member's
            reason = next(iter(str(error).splitlines()), "") or type(error).__name__  # not the statement quoted
            log.warning("could not give the leases up (%s); they expire in %.0f s", reason, self.ttl)
        with self._lock:
            self._held.clear()
        self._legacy.release()
        if self._connection is not None:
            self._connection.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as error:
                log.warning("lease keeper: %s; trying again", error)
                self._drop_connection()
            self._wake.wait(WANTING_TICK if self._wanting else self.tick_every)
            self._wake.clear()

    def tick(self) -> None:
        """One round: attend, renew, then give up what the balance gives another and take what it gives this one."""
        shown = self.held()
        with self._lock:
            before = dict(self._held)  # those being given up too: held until released
        with self._cursor() as cur:
            if self.names and not self._legacy.absent(cur, self._connection):
                # Alive all the same, running no lease: its sign-ins in flight go on counting (api/throttle.py).
                leases.attend(cur, self.holder, self.ttl, {}, {})
                return
            if not self._ensured:
                leases.ensure(cur, self.names)
                self._ensured = True
            owners = assign(leases.attend(cur, self.holder, self.ttl, self.weights, self.versions))
            renewed = leases.renew(cur, self.holder, before, self.ttl)
            held = {name: token for name, token in before.items() if name in renewed}
            for name in sorted(set(before) - renewed):
                log.warning("lease %s lost by %s (expired or taken over)", name, self.holder)
            mine = {name for name in self.names if owners.get(name) == self.holder}
            with self._lock:
                # Not one a batch is using: it is given up once that batch ends, and no batch starts on it.
                extra = sorted(set(held) - mine)
                giving = [name for name in extra if name not in self._busy]
                self._leaving = set(extra) - set(giving)
                for name in giving:
                    self._held.pop(name, None)
            for name in giving:
                leases.release(cur, name, self.holder, held.pop(name))
                log.info("lease %s released by %s: the balance gives it to %s", name, self.holder, owners[name])
            unheld = leases.unheld(cur, [name for name in self.names if name not in held])
            for name in sorted(unheld):
                if name not in mine and unheld[name] < self.ttl:
                    continue  # its member's to take
                try:
                    taken = leases.acquire(cur, name, self.holder, self.ttl)
                except psycopg_errors("LockNotAvailable"):
                    # Another transaction holds the row (lock_timeout): the others are still worth a try.
                    log.warning("lease %s: its row is locked; trying again next tick", name)
                    continue
                if taken is None:
                    continue
                held[name], previous, ended = taken
                log.info(
                    "lease %s acquired by %s with token %d%s",
                    name,
                    self.holder,
                    held[name],
                    f" from {previous} ({ended} of its open batches ended)" if previous else "",
                )
        with self._lock:
            # A lease a batch reported lost meanwhile was lost before this renewal, which proved it
            # ours again (same token: nobody held it in between).
            self._held = dict(held)
            self._wanting = bool(mine - set(held))
        if self.held() != shown:
            self.changed()

    def check(self, held: dict[str, int], *, margin: float = 0.0) -> None:
        """Raise LeaseLost unless `held` is still ours for `margin` seconds more (before a side effect)."""
        with self.db.transaction() as cur:
            leases.fence(cur, self.holder, held, margin=margin)

    @contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        """The keeper's own connection on PostgreSQL (never waiting behind the pool's other users);
        a write transaction on SQLite."""
        if self.db.dialect != "postgresql":
            with self.db.transaction(write=True) as cur:
                yield cur
            return
        if self._connection is None or self._connection.closed:
            from psycopg.rows import dict_row

            from ugc.platform.postgres_driver import psycopg

            self._connection = psycopg.connect(
                self.db.url,
                autocommit=True,
                row_factory=dict_row,
                options=KEEPER_OPTIONS,
                application_name="ugc-lease-keeper",
                **KEEPALIVES,
            )
        with self._connection.cursor() as cur:
            yield Cursor(cur, "postgresql")

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
