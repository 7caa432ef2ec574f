"""Runs projections: catch up in batches, then follow the log live.

Each projection has its own lease (projections/leasing.py): every process that runs projections
applies only those it holds, several processes share them, and a standby takes a dead or frozen
holder's over within seconds. Each batch of a read-model projection commits its rows and its new
position in one transaction, which also checks the lease (`leases.fence`): every event is applied
exactly once, whatever fails in between, and a holder that lost its lease commits nothing more.
The read models follow the logs in one thread, each side effect (a mail) in a thread of its own
(`Lane`): a side effect waits on servers outside (an SMTP server that hangs held a mail ~50 s), and
commands wait for read models, never for a side effect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from projections.base import Projection, SideEffectDeferred, SideEffectPostponed, SideEffectRefused, end_batch
from projections.leasing import LeaseKeeper
from readmodels import parked, tracking, versions
from readmodels.waiting import Progress
from ugc.platform import leases, metrics
from ugc.platform.backoff import doubling
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, Row, integrity_errors, psycopg_errors
from ugc.platform.listening import Subscription
from ugc.platform.outages import database_away
from ugc.platform.store import EventStores

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# How often the leader looks for new events unprompted. Appends in this process nudge it, and on
# PostgreSQL so does LISTEN for every other process's, so there the poll is only a safety net.
POLL_INTERVAL = {"sqlite": 0.02, "postgresql": 1.0}
MAX_BACKOFF = 5.0
# A side effect that failed for a while only (SideEffectDeferred: its server down or busy) is tried
# again for as long as that lasts, backing off the same way to this: ~11 tries in its first minute,
# then one a minute.
DEFERRED_MAX_BACKOFF = 60.0
# A side effect postponed for a reason of its own (SideEffectPostponed: its mail's recipient
# greylisted) is tried again on its own, after the first of these and doubling to the second
# (seconds; greylisting lets a sender in after a few minutes), for at most POSTPONED_FOR, then
# parked for an operator. Each side effect's lane looks for those due every POSTPONED_CHECK.
POSTPONED_BACKOFF = (60.0, 1800.0)
POSTPONED_FOR = timedelta(hours=24)
POSTPONED_CHECK = 1.0
# Failures in a row on one event before it is parked (UGC_PROJECTION_MAX_ATTEMPTS). The retries
# back off from 0.05 s, doubling, so with the default an event is parked ~0.75 s after it first
# failed: a command that waited behind it still gets its answer within its 2 s wait. A lost
# database, or one that refuses writes (`database_away`), is not the event's fault: never counted.
MAX_ATTEMPTS = 5
JOB_INTERVAL = 10.0
JOBS_LEASE = "scheduler"  # the lease under which the periodic jobs run (one process at a time)
# A side effect (a mail) starts only while its lease has this long to live: a holder that lost its
# lease never acts again, and its successor acquires the lease no sooner than this after the check.
SIDE_EFFECT_MARGIN = 1.0


def stale_positions() -> tuple[type[Exception], ...]:
    """What a batch begun from remembered positions meets when another process moved them meanwhile."""
    return (tracking.Moved, *integrity_errors())


@dataclass
class Lane:
    """Projections one thread follows: the read models (and the jobs) together, and each side effect
    alone, so a side effect that waits on another server (a mail server that hangs) never holds up
    a read model, nor the commands waiting for one."""

    name: str
    projections: list[Projection]
    runs_jobs: bool = False
    reread_passed_over_at: float = 0.0
    postponed_check_at: float = 0.0

    def keys(self) -> list[tuple[str, str]]:
        """(projection, application) of everything this lane follows."""
        return [(p.name, application) for p in self.projections for application in p.applications]


@dataclass(frozen=True)
class FailedEvent:
    """The event a projection's last batch could not decode or apply."""

    projection: str
    application: str
    position: int
    topic: str


class ProjectionRunner:
    def __init__(
        self,
        db: Database,
        stores: EventStores,
        projections: Sequence[Projection],
        progress: Progress,
        *,
        batch_size: int = BATCH_SIZE,
        jobs: Sequence[Callable[[], object]] = (),
        lease_weights: Mapping[str, float] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        postponed_backoff: tuple[float, float] = POSTPONED_BACKOFF,
        postponed_for: timedelta = POSTPONED_FOR,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.stores = stores
        self.projections = list(projections)
        self.progress = progress
        self.batch_size = batch_size
        self.jobs = list(jobs)  # periodic work of the leader only, e.g. commands issued by time
        self.lease_weights = dict(lease_weights or {})  # the leases' balance between processes (1 if unsaid)
        self._stopping = threading.Event()
        self._threads: dict[threading.Thread, float] = {}
        # Per (projection, application): a projection that fails on one log goes on with the others.
        self._retry_at: dict[tuple[str, str], float] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._deferrals: dict[tuple[str, str], int] = {}  # failures in a row that were SideEffectDeferred
        # The position of the event its last failure was on (None: not an event's fault).
        self._failed_at: dict[tuple[str, str], int | None] = {}
        self.max_attempts = max_attempts
        self.postponed_backoff = postponed_backoff
        self.postponed_for = postponed_for
        self.clock = clock
        # (projection, application) -> positions not to apply (parked or skipped), read when missing.
        self._passed_over: dict[tuple[str, str], set[int]] = {}
        # (projection, application) -> the event its last batch failed on. Lanes run in threads of
        # their own, and share these maps only by key: each key is one lane's.
        self._failed_events: dict[tuple[str, str], FailedEvent] = {}
        self._applied: dict[tuple[str, str], int] = {}  # (projection, application) -> position last committed
        # Lease -> the token under which its projection was last told it goes on from positions it did
        # not commit (`resumed`): not again when this runner only lost its database and came back.
        self._resumed_under: dict[str, int] = {}
        self.keeper: LeaseKeeper | None = None  # set by `start`: batches then run fenced by their leases
        # Waiters in this process wait only for the read models that handle what a command appended.
        progress.declare({p.name: frozenset(p.topics()) for p in self.projections if p.read_model})

    def register(self) -> None:
        """Give every projection a position (0 when new) so waiters know to wait for it, and each read
        model with no version stored this code's (its tables taken as built by it: a database older
        than versions, or a read model new to it)."""
        rows = sorted((application, p.name, p.read_model) for p in self.projections for application in p.applications)
        with self.db.transaction(write=True) as cur:
            # In the order batches lock them (per log, by name), should a row need locking at all.
            for application, name, read_model in rows:
                tracking.register(cur, name, application, read_model=read_model)
            versions.adopt(cur, {p.name: p.version for p in self.projections if p.read_model})

    def run_once(self, projection: Projection, applications: Sequence[str] | None = None) -> int:
        """Apply at most one batch per application (all it follows, or `applications`); how many events were read."""
        seen = 0
        for application in projection.applications if applications is None else applications:
            seen += self._apply(application, [projection])
        return seen

    def catch_up(self, projections: Sequence[Projection] | None = None) -> None:
        for projection in self.projections if projections is None else projections:
            while self.run_once(projection):
                pass

    def reset(self, projection: Projection) -> None:
        """Empty the projection's tables and rewind it, in one transaction; `catch_up` refills them."""
        with self.db.transaction(write=True) as cur:
            for table in projection.tables:
                cur.execute(f"DELETE FROM {table}")
            tracking.reset(cur, projection.name)
        for application in projection.applications:
            self._applied.pop((projection.name, application), None)

    def _apply(
        self, application: str, projections: Sequence[Projection], tokens: Mapping[str, int] | None = None
    ) -> int:
        """One batch of `application`'s events for `projections` (read models, or one side effect);
        with `tokens` (lease name -> fencing token), only while this process holds those leases."""
        if len(projections) == 1 and not projections[0].read_model:
            return self._apply_side_effects(projections[0], application, tokens)
        seen = self._apply_batch(application, projections, tokens)
        if seen:
            self.progress.advanced()
        return seen

    def _apply_batch(
        self, application: str, projections: Sequence[Projection], tokens: Mapping[str, int] | None
    ) -> int:
        """In one transaction, each read model applies the events after its own position (up to a
        batch) and moves that position; how many events the longest batch held.

        Read models that stand at the same position (all of them, but for one being rebuilt) share
        the reading and decoding of each event, and the commit. The positions this runner committed
        last are not read again (a round trip per batch): moving them checks they were still there.
        When another process moved one meanwhile (a rebuild), the batch fails (at that check, or on
        a row the rebuild wrote already), rolls back, and starts over from the positions as stored
        (`resumed`: the rows the rebuild stored past the remembered positions were pushed by no one).
        """
        from_memory = all((p.name, application) in self._applied for p in projections)
        try:
            return self._apply_batch_once(application, projections, tokens)
        except stale_positions():
            if not from_memory:
                raise
            for projection in projections:
                projection.resumed()
            return self._apply_batch_once(application, projections, tokens)

    def _apply_batch_once(
        self, application: str, projections: Sequence[Projection], tokens: Mapping[str, int] | None
    ) -> int:
        app = self.stores[application]
        names = [p.name for p in projections]
        for name in names:
            self._failed_events.pop((name, application), None)
        remembered = {name: self._applied.get((name, application)) for name in names}
        try:
            with self.db.transaction(write=True, pipelined=True) as cur:
                if tokens is not None:
                    leases.name_batch(cur, self._holder)
                if None in remembered.values():
                    starts = tracking.positions(cur, application, names, lock=True)
                else:
                    tracking.lock(cur, application, names)
                    starts = {name: position for name, position in remembered.items() if position is not None}
                standing: dict[int, list[Projection]] = {}
                for projection in projections:
                    standing.setdefault(starts[projection.name], []).append(projection)
                self._read_passed_over(cur, application, names, min(starts.values()))
                reached = dict(starts)
                seen = 0
                for start, together in standing.items():
                    batch = app.recorder.select_notifications(
                        start=start, limit=self.batch_size, inclusive_of_start=False
                    )
                    if not batch:
                        continue
                    seen = max(seen, len(batch))
                    topics = [
                        (projection, projection.topics(), self._passed_over[(projection.name, application)])
                        for projection in together
                    ]
                    for notification in batch:
                        event = None
                        for projection, handlers, passed_over in topics:
                            handler = handlers.get(notification.topic)
                            if handler is None or notification.id in passed_over:
                                continue
                            try:
                                if event is None:
                                    event = app.mapper.to_domain_event(notification)
                                projection.position = notification.id
                                handler(cur, event)
                            except Exception:
                                self._failed_events[(projection.name, application)] = FailedEvent(
                                    projection.name, application, notification.id, notification.topic
                                )
                                raise
                    end_batch(cur, together)
                    for projection in together:
                        reached[projection.name] = batch[-1].id
                    moved = tracking.Advanced(application, tuple(p.name for p in together), batch[-1].id)
                    tracking.advance(cur, application, moved.projections, start, moved.position)
                    tracking.announce(cur, moved)
                if tokens is not None and seen:
                    # Last, so the lease rows stay locked against takeover only from here to the commit.
                    leases.fence(cur, self._holder, tokens)
        except BaseException:
            for name in names:
                self._applied.pop((name, application), None)
            for projection in projections:
                projection.aborted()
            raise
        self._applied.update(((name, application), position) for name, position in reached.items())
        for projection in projections:
            projection.committed()
        return seen

    def _apply_side_effects(self, projection: Projection, application: str, tokens: Mapping[str, int] | None) -> int:
        """Act on each event and record its position, only while the lease holds (under one).

        The position is recorded at the side effect's point of no return (`Projection.go_ahead`:
        before the final dot of an SMTP DATA), in a transaction that checks the lease: a sender frozen
        there, woken after a standby took over, has either recorded it (the standby does not act
        again) or is refused (it does not act). One that fails after recording puts the position back.
        A side effect that names no such point is recorded after it (at least once across a crash).
        """
        self._failed_events.pop((projection.name, application), None)
        app = self.stores[application]
        handlers = projection.topics()
        with self.db.transaction() as cur:
            start = tracking.position(cur, projection.name, application)
            self._read_passed_over(cur, application, [projection.name], start)
        passed_over = self._passed_over[(projection.name, application)]
        batch = app.recorder.select_notifications(start=start, limit=self.batch_size, inclusive_of_start=False)
        for notification in batch:
            handler = handlers.get(notification.topic)
            recorded = [False]
            if handler is not None and notification.id not in passed_over:
                if tokens is not None and self.keeper is not None:
                    self.keeper.check(dict(tokens), margin=SIDE_EFFECT_MARGIN)

                def record(before: int = start, after: int = notification.id, done: list[bool] = recorded) -> None:
                    self._record(projection, application, before, after, tokens)
                    done[0] = True

                projection.go_ahead = record
                try:
                    handler(app.mapper.to_domain_event(notification))
                except Exception:
                    self._failed_events[(projection.name, application)] = FailedEvent(
                        projection.name, application, notification.id, notification.topic
                    )
                    if recorded[0]:
                        self._record(projection, application, notification.id, start, tokens)
                    raise
                finally:
                    projection.go_ahead = Projection.go_ahead
            if not recorded[0]:
                self._record(projection, application, start, notification.id, tokens)
            start = notification.id
        return len(batch)

    def _record(
        self, projection: Projection, application: str, old: int, new: int, tokens: Mapping[str, int] | None
    ) -> None:
        """Move a side effect's position from `old` to `new`, while its lease holds."""
        with self.db.transaction(write=True) as cur:
            if tokens is not None:
                # Before the write: frozen from there to its commit, it holds the position's row, and a
                # successor ends only the transactions it can find by this name (`leases.acquire`).
                leases.name_batch(cur, self._holder)
            tracking.advance(cur, application, [projection.name], old, new)
            if tokens is not None:
                leases.fence(cur, self._holder, tokens)

    def _read_passed_over(self, cur: Cursor, application: str, names: Sequence[str], after: int) -> None:
        """Read which positions the projections must not apply, unless known (forgotten at each failure,
        so an operator's `skip` is seen at the next try)."""
        missing = [name for name in names if (name, application) not in self._passed_over]
        if missing:
            found = parked.passed_over(cur, application, missing, after)
            self._passed_over.update(((name, application), positions) for name, positions in found.items())

    def _park(self, projection: Projection, failure: FailedEvent, cause: Exception, attempts: int) -> None:
        """Record the event that failed `attempts` times in a row; the projection goes on past it."""
        error = f"{type(cause).__name__}: {cause}"
        with self.db.transaction(write=True) as cur:
            parked.park(
                cur,
                projection.name,
                failure.application,
                failure.position,
                failure.topic,
                error,
                attempts,
                self.clock(),
            )
        self._passed_over.pop((projection.name, failure.application), None)
        log.error(
            "projection %s parked event %d of %s (%s) after %d failures: %s",
            projection.name,
            failure.position,
            failure.application,
            failure.topic,
            attempts,
            error,
        )

    def _postpone(self, projection: Projection, failure: FailedEvent, cause: Exception) -> None:
        """Set aside the side effect that failed for a reason of its own; the projection goes on past it."""
        now = self.clock()
        retry_at = now + timedelta(seconds=self.postponed_backoff[0])
        with self.db.transaction(write=True) as cur:
            parked.postpone(
                cur, projection.name, failure.application, failure.position, failure.topic, str(cause), 1, now, retry_at
            )
        self._passed_over.pop((projection.name, failure.application), None)
        log.warning(
            "projection %s postponed event %d of %s until %s: %s",
            projection.name,
            failure.position,
            failure.application,
            f"{retry_at:%H:%M:%S}",
            cause,
        )

    def _retry_postponed(self, projection: Projection, tokens: Mapping[str, int]) -> None:
        """Try again each side effect of `projection` postponed until now, as a batch acts: while the
        lease holds, recorded (its row deleted) at its point of no return in a transaction that checks
        the lease. One that fails again is postponed again, backing off, or parked once it has waited
        `postponed_for` or failed otherwise."""
        assert self.keeper is not None
        with self.db.read() as cur:
            due = parked.postponed_due(cur, projection.name, self.clock())
        handlers = projection.topics()
        for row in due:
            application, position = row["application"], int(row["position"])
            app = self.stores[application]
            recorded = [False]

            def record(done: list[bool] = recorded, application: str = application, position: int = position) -> None:
                with self.db.transaction(write=True) as cur:
                    leases.name_batch(cur, self._holder)
                    parked.applied(cur, projection.name, application, position)
                    leases.fence(cur, self._holder, tokens)
                done[0] = True

            try:
                with self.keeper.using(list(tokens)):
                    self.keeper.check(dict(tokens), margin=SIDE_EFFECT_MARGIN)
                    found = app.recorder.select_notifications(start=position, limit=1)
                    if not found or found[0].id != position:
                        raise LookupError(f"no event at {position} in {application}")
                    notification = found[0]
                    handler = handlers.get(notification.topic)
                    projection.go_ahead = record
                    try:
                        if handler is not None:
                            handler(app.mapper.to_domain_event(notification))
                    finally:
                        projection.go_ahead = Projection.go_ahead
                    if not recorded[0]:  # it had nothing left to do (an erased person's mail)
                        record()
            except leases.LeaseLost as lost:
                log.warning("postponed side effects of %s not tried: %s", projection.name, lost)
                self.keeper.lost(lost.names)
                return
            except Exception as error:
                if database_away(error):  # the database, not the side effect
                    raise
                self._failed_again(projection, row, error)

    def _failed_again(self, projection: Projection, row: Row, error: Exception) -> None:
        now = self.clock()
        application, position, attempts = row["application"], int(row["position"]), int(row["attempts"]) + 1
        with self.db.transaction(write=True) as cur:
            if isinstance(error, SideEffectDeferred) and now - row["parked_at"] < self.postponed_for:
                first, longest = self.postponed_backoff
                retry_at = now + timedelta(seconds=doubling(first, longest, attempts - 1))
                parked.postpone(
                    cur,
                    projection.name,
                    application,
                    position,
                    row["topic"],
                    str(error),
                    attempts,
                    row["parked_at"],
                    retry_at,
                )
                log.warning(
                    "projection %s postponed event %d of %s again (attempt %d) until %s: %s",
                    projection.name,
                    position,
                    application,
                    attempts,
                    f"{retry_at:%H:%M:%S}",
                    error,
                )
                return
            parked.park(
                cur,
                projection.name,
                application,
                position,
                row["topic"],
                f"{type(error).__name__}: {error}",
                attempts,
                row["parked_at"],
            )
        log.error(
            "projection %s parked postponed event %d of %s after %d attempts: %s",
            projection.name,
            position,
            application,
            attempts,
            error,
        )

    # Live following -----------------------------------------------------------------------

    @property
    def _holder(self) -> str:
        return self.keeper.holder if self.keeper is not None else ""

    def lease_names(self) -> list[str]:
        """The leases this runner's work is divided into: one per projection, one for the jobs."""
        return [p.name for p in self.projections] + ([JOBS_LEASE] if self.jobs else [])

    def lanes(self) -> list[Lane]:
        """The read models and the jobs in one lane; each side effect in a lane of its own."""
        read_models = [p for p in self.projections if p.read_model]
        side_effects = [Lane(p.name, [p]) for p in self.projections if not p.read_model]
        return [Lane("read-models", read_models, runs_jobs=True), *side_effects]

    def start(self) -> None:
        """Run in background threads until `stop()`: hold its share of the leases (by weight), catch up,
        follow, a thread per lane."""
        self.keeper = LeaseKeeper(
            self.db,
            self.lease_names(),
            weights=self.lease_weights,
            versions={p.name: p.version for p in self.projections if p.read_model},
            changed=self.progress.nudge,
        )
        self.keeper.start()
        # Thread -> how long `stop` waits for it. A side effect may be waiting on its server for
        # minutes (mail: SMTP's timeouts): it is left behind, and the leases given up then refuse
        # it at its point of no return.
        self._threads = {
            threading.Thread(target=self._work, args=(lane,), name=f"projection-runner {lane.name}", daemon=True): (
                10.0 if lane.runs_jobs else 1.0
            )
            for lane in self.lanes()
        }
        if self.db.dialect == "postgresql":
            self._threads[threading.Thread(target=self._listen, name="projection-listen", daemon=True)] = 10.0
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.progress.nudge()
        for thread, patience in self._threads.items():
            thread.join(timeout=patience)
        if self.keeper is not None:
            self.keeper.stop()

    def _work(self, lane: Lane) -> None:
        while not self._stopping.is_set():
            try:
                self._follow(lane)
            except Exception as error:
                # One line, no traceback: the database away (lost, refusing writes) is expected now and then.
                log.warning("projection runner (%s): database unavailable (%s); retrying in 1 s", lane.name, error)
                for key in lane.keys():
                    self._applied.pop(key, None)
            if lane.runs_jobs:
                self.progress.leading = False
            self._stopping.wait(1.0)

    def _follow(self, lane: Lane) -> None:
        assert self.keeper is not None
        following = {
            application: [p for p in lane.projections if application in p.applications]
            for application in self.stores.applications
        }
        read_models = {p.name for p in lane.projections if p.read_model}
        known_heads: dict[str, int] = {}
        behind: set[tuple[str, str]] = set()  # (projection, application) whose last batch was full
        tokens: dict[str, int] = {}
        next_jobs = time.monotonic()
        while not self._stopping.is_set():
            held = self.keeper.held()
            if held != tokens:
                self._taken_over(lane, held, tokens, behind)
                tokens = held
                if lane.runs_jobs:
                    # Waiters in this process hear of every move from this runner only when it holds them all.
                    self.progress.leading = read_models <= set(held)
            if lane.runs_jobs and JOBS_LEASE in held and time.monotonic() >= next_jobs:
                self._run_jobs({JOBS_LEASE: held[JOBS_LEASE]})
                next_jobs = time.monotonic() + JOB_INTERVAL
            if time.monotonic() >= lane.reread_passed_over_at:
                # Read the parked and skipped positions again: an operator's `skip` of an event
                # not reached yet is seen within JOB_INTERVAL (one stuck on it, at its next try).
                for key in lane.keys():
                    self._passed_over.pop(key, None)
                lane.reread_passed_over_at = time.monotonic() + JOB_INTERVAL
            # Read before running: whatever is appended after this read moves a head next round.
            heads = self.stores.heads()
            for application, projections in following.items():
                # Only logs that moved, unless a projection's last batch was full or failed.
                due = [
                    p
                    for p in projections
                    if p.name in held
                    and (
                        known_heads.get(application) != heads[application]
                        or (p.name, application) in behind
                        or (p.name, application) in self._retry_at
                    )
                ]
                due = [p for p in due if self._retry_at.get((p.name, application), 0.0) <= time.monotonic()]
                # Healthy read models go together; a read model that failed alone.
                together = [p for p in due if p.read_model and (p.name, application) not in self._retry_at]
                groups = [together] if together else []
                groups += [[p] for p in due if p not in together]
                for group in groups:
                    ran = self._run_guarded(application, group, {p.name: held[p.name] for p in group})
                    for projection, full in ran.items():
                        if full:
                            behind.add((projection, application))
                        else:
                            behind.discard((projection, application))
            known_heads = heads
            if time.monotonic() >= lane.postponed_check_at:
                for side_effect in lane.projections:
                    if not side_effect.read_model and side_effect.name in held:
                        self._retry_postponed(side_effect, {side_effect.name: held[side_effect.name]})
                lane.postponed_check_at = time.monotonic() + POSTPONED_CHECK
            if not behind:
                retries = [at - time.monotonic() for key in lane.keys() if (at := self._retry_at.get(key)) is not None]
                self.progress.wait_for_nudge(max(0.0, min([POLL_INTERVAL[self.db.dialect], *retries])), lane.name)

    def _taken_over(
        self, lane: Lane, held: Mapping[str, int], before: Mapping[str, int], behind: set[tuple[str, str]]
    ) -> None:
        """The lane's leases acquired (or acquired again) since `before`: their positions may have moved
        under another holder, so they are read again, and each runs at once (`resumed`: the holder
        before may have stored rows it never pushed). Leases gone: nothing left to do."""
        for projection in lane.projections:
            name = projection.name
            if held.get(name) == before.get(name):
                continue
            if name in held and self._resumed_under.get(name) != held[name]:
                self._resumed_under[name] = held[name]
                projection.resumed()
            for application in projection.applications:
                key = (name, application)
                self._applied.pop(key, None)
                self._passed_over.pop(key, None)
                self._retry_at.pop(key, None)
                if name in held:
                    behind.add(key)
                else:
                    behind.discard(key)

    def _run_guarded(
        self, application: str, projections: Sequence[Projection], tokens: Mapping[str, int] | None = None
    ) -> dict[str, bool]:
        """Run one batch; for each projection that ran, whether its batch was full (more may wait).

        When a shared batch fails, each projection runs alone, so the failing one backs off by
        itself and the others go on.
        """
        started = time.monotonic()
        try:
            with self.keeper.using(list(tokens)) if self.keeper is not None and tokens is not None else nullcontext():
                seen = self._apply(application, projections, tokens)
        except leases.LeaseLost as lost:
            # Not the events' fault: the batch committed nothing; the keeper acquires the lease
            # again if it can, with a new token.
            log.warning(
                "projection batch of %s on %s not committed: %s", [p.name for p in projections], application, lost
            )
            if self.keeper is not None:
                self.keeper.lost(lost.names)
            # The others of the group committed nothing either: they run again at once, not at the
            # log's next append (which may be the very command waiting for them).
            return {p.name: True for p in projections if p.name not in lost.names}
        except Exception as error:
            if database_away(error):  # the database, not the events: `_work` backs off
                raise
            if len(projections) > 1:
                return {
                    name: full
                    for p in projections
                    for name, full in self._run_guarded(
                        application, [p], None if tokens is None else {p.name: tokens[p.name]}
                    ).items()
                }
            return self._failed(projections[0], application, error)
        if seen:
            metrics.BATCH_SECONDS.labels(application).observe(time.monotonic() - started)
        for projection in projections:
            key = (projection.name, application)
            self._retry_at.pop(key, None)
            again = (self._failures.pop(key, None), self._deferrals.pop(key, None))
            if any(again):
                log.info(
                    "projection %s applied a batch of %s again (%d events read)", projection.name, application, seen
                )
            self._failed_at.pop(key, None)
        # A batch shorter than the limit reached the log's end as it stood after `heads` was read.
        return {projection.name: seen >= self.batch_size for projection in projections}

    def _failed(self, projection: Projection, application: str, error: Exception) -> dict[str, bool]:
        """Back off after a failed batch of one projection; park its event after `max_attempts` in a
        row, unless it failed for a while only (SideEffectDeferred)."""
        name = projection.name
        key = (name, application)
        metrics.PROJECTION_FAILURES.labels(name).inc()
        self._passed_over.pop(key, None)
        failed = self._failed_events.pop(key, None)
        if isinstance(error, SideEffectPostponed) and failed is not None:
            self._postpone(projection, failed, error)
            for kept in (self._deferrals, self._failures, self._failed_at):
                kept.pop(key, None)
            self._retry_at[key] = time.monotonic()
            return {name: True}
        if isinstance(error, SideEffectDeferred):
            deferrals = self._deferrals.get(key, 0) + 1
            self._deferrals[key] = deferrals
            delay = doubling(0.025, DEFERRED_MAX_BACKOFF, deferrals)
            self._retry_at[key] = time.monotonic() + delay
            log.warning("projection %s deferred (attempt %d): %s; retrying in %.1fs", name, deferrals, error, delay)
            return {}
        where = failed.position if failed is not None else None
        failures = self._failures.get(key, 0) + 1 if key in self._failed_at and self._failed_at[key] == where else 1
        self._failures[key], self._failed_at[key] = failures, where
        if failed is not None and failures >= self.max_attempts:
            self._park(projection, failed, error, failures)
            self._failures.pop(key, None)
            self._failed_at.pop(key, None)
            self._retry_at[key] = time.monotonic()
            return {name: True}
        delay = doubling(0.025, MAX_BACKOFF, failures)
        self._retry_at[key] = time.monotonic() + delay
        if isinstance(error, SideEffectRefused):  # expected (a mail server's refusal): no traceback
            log.warning("projection %s failed (attempt %d): %s; retrying in %.1fs", name, failures, error, delay)
        else:
            log.exception("projection %s failed (attempt %d); retrying in %.1fs", name, failures, delay)
        return {}

    def _run_jobs(self, tokens: dict[str, int]) -> None:
        """Each job in turn, each only while the jobs' lease is still this process's."""
        assert self.keeper is not None
        for job in self.jobs:
            try:
                with self.keeper.using(list(tokens)):
                    self.keeper.check(tokens, margin=SIDE_EFFECT_MARGIN)
                    try:
                        job()
                    except Exception as error:
                        if database_away(error):  # not the job's failure: no traceback, not counted
                            log.warning("scheduled jobs not run: database unavailable (%s)", error)
                            return
                        log.exception("scheduled job %s failed; it runs again next round", job)
                        metrics.JOB_FAILURES.labels(getattr(job, "__qualname__", repr(job))).inc()
            except leases.LeaseLost as lost:
                log.warning("scheduled jobs not run: %s", lost)
                self.keeper.lost(lost.names)
                return
            except psycopg_errors("Error") as error:
                log.warning("scheduled jobs not run: %s", error)
                return

    def _listen(self) -> None:
        """While holding any lease, wake the runner when any process appends (PostgreSQL NOTIFYs every
        insert), on the process's LISTEN (`db.listener`). Not while it holds none: a standby would
        read the logs' heads at every append for nothing."""
        channels = [f"{name}_events" for name in self.stores.applications]
        subscriptions: list[Subscription] = []
        try:
            while not self._stopping.is_set():
                holding = self.keeper is not None and bool(self.keeper.held())
                if holding and not subscriptions:
                    # Listening (again) is a nudge too: an append before it took effect went unheard.
                    subscriptions = [
                        self.db.listener.subscribe(Subscription(channel, self._nudged, self.progress.nudge))
                        for channel in channels
                    ]
                elif subscriptions and not holding:
                    self._unlisten(subscriptions)
                    subscriptions = []
                self._stopping.wait(0.2)
        finally:
            self._unlisten(subscriptions)

    def _nudged(self, _payload: str) -> None:
        self.progress.nudge()

    def _unlisten(self, subscriptions: Sequence[Subscription]) -> None:
        for subscription in subscriptions:
            self.db.listener.cancel(subscription)
