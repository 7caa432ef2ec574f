"""Appending aggregates from many threads in shared transactions (group commit).

The library locks an application's events table for every `save()` until its COMMIT, so one save
per command caps the commands at one table lock at a time (bench/RESULTS.md). Commands that arrive
while one save is under way wait for it to end and then go together: one transaction, one lock,
one NOTIFY, one COMMIT. Alone, a command goes at once.

`GroupCommit` takes both kinds of command of one application into the same groups:

* new aggregates (placing orders), made by the leader from what it prepared for the group at once;
* commands on stored aggregates (`change`): the leader loads the group's aggregates in one read and
  decides each command on its aggregate as stored then, so a follow-up command costs its caller no
  load of its own (issue 15: each used to load its order on its own, a query on the store's few
  connections). A group holds one command per aggregate; a second waits for the next group and is
  decided on the first one's outcome. The leader keeps what it saved (`KEPT`): loading one of those
  reads only the events appended since, by other processes. When another process appended to an
  aggregate between the load and the save, the store refuses the save (IntegrityError): the group's
  changes fail with it, so each caller decides again on the new state (`saving.retrying`), and the
  group's new aggregates, which cannot clash, are appended again without them.

A command that records something under a fresh public number (a delivery, a review:
`change_numbered`) gets it from the leader too, which takes the numbers of the whole group together
with what it prepares for the new aggregates, and reads them in the round trip that loads the
group's aggregates (on PostgreSQL): one round trip for the lot, not one per command (issue 15).

One queue for both: two would take turns at the table lock, a COMMIT each per round, and a
lifecycle's follow-up commands would wait for placing's groups and the other way round (issue 15).

Before a save, each command's request with an `Idempotency-Key` records what it is about to append
(commands/intents.py), in the caller's context, in the leader once it has made or decided the
aggregate. A command whose record fails is not saved; it fails alone.
"""

from __future__ import annotations

import contextvars
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, CanMutateProtocol, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Recording

from commands.intents import announce
from commands.saving import Positions, appended
from ugc.platform import metrics
from ugc.platform.cache import LRU
from ugc.platform.chain import ChainedLog
from ugc.platform.dialect import Query, Row

MAX_GROUP = 200  # aggregates per transaction: bounds what one failure takes down with it
# Aggregates saved here that the leader keeps, to load them by reading only what was appended since:
# an order is busy for the minutes of its lifecycle, then rarely touched (~2.2 KiB an order).
KEPT = 1_000

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")  # what each aggregate of a group is made from, prepared for the whole group at once
R = TypeVar("R")  # what a change's decision returns
E = TypeVar("E", bound="_Queued")


@dataclass(eq=False)
class _Queued:
    positions: Positions = field(default_factory=dict)
    error: BaseException | None = None
    finished: bool = False
    # Set once: when the entry's group was saved (or failed), or when its caller is to lead the next group.
    woken: threading.Event = field(default_factory=threading.Event)


class _Groups(ABC, Generic[E]):
    """The queue and its leader: whoever finds no save under way leads. It takes what `_take`
    chooses from the queue, saves it with `_save` (which finishes every entry it took), and hands the
    lead to the first caller still queued, if any. Each waiting caller is woken once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[E] = []  # not yet taken into a group
        self._saving = False  # a leader is under way; while not, the queue is empty

    def _enqueue(self, entry: E) -> None:
        """Return once `entry` is finished: saved in some group, or failed (`entry.error`)."""
        with self._lock:
            self._queue.append(entry)
            queued_behind_a_save, self._saving = self._saving, True
        if queued_behind_a_save:
            entry.woken.wait()
        if not entry.finished:  # leading: the entry is first in the queue
            self._lead()

    def _lead(self) -> None:
        with self._lock:
            group = self._take()
        try:
            self._save(group)
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].woken.set()  # the next leader
                else:
                    self._saving = False

    def _take(self) -> list[E]:
        group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        return group

    @abstractmethod
    def _save(self, group: list[E]) -> None:
        """Save `group`'s entries together and finish every one of them (`_finish`)."""


def _finish(group: Sequence[_Queued], failure: BaseException | None) -> None:
    for entry in group:
        if failure is not None and entry.error is None:
            entry.error = failure
        entry.finished = True
        entry.woken.set()


def _landed(recordings: Sequence[Recording[UUID]]) -> dict[UUID, list[Recording[UUID]]]:
    """`recordings` by the aggregate whose events they are."""
    landed: dict[UUID, list[Recording[UUID]]] = {}
    for recording in recordings:
        landed.setdefault(recording.domain_event.originator_id, []).append(recording)
    return landed


@dataclass(eq=False)
class _Entry(_Queued, Generic[T, A]):
    """A new aggregate to make: `make` runs in the leader's thread, in the caller's context."""

    make: Callable[[T], A] | None = None
    # The caller's context, which `make` runs in whoever leads: the events it records name the
    # caller's request (ugc.events.current_request), not the leader's.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    prepared: T | None = None  # what the leader prepared for it, kept to make it again
    aggregate: A | None = None


@dataclass(eq=False)
class _Change(_Queued, Generic[A]):
    """A command on a stored aggregate: `decide` runs in the leader's thread, in the caller's context,
    with a fresh number of kind `numbered` if it asked for one (None otherwise)."""

    aggregate_id: UUID | None = None
    decide: Callable[[A, int | None], Any] | None = None
    numbered: str | None = None
    number: int | None = None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    aggregate: A | None = None  # as decided: as saved, once the group's save went through
    result: Any = None  # what `decide` returned


@dataclass(frozen=True)
class Preparing(Generic[T]):
    """How a group is prepared: `query`, a SELECT of one row that the leader reads in the round trip
    that loads the group's aggregates (PostgreSQL), and `finish`, which makes of that row (None
    without a query: it reads what it needs itself) what each new aggregate is made from and the
    fresh numbers of each kind."""

    query: Query | None
    finish: Callable[[Row | None], tuple[Sequence[T], Mapping[str, Sequence[int]]]]


Prepare = Callable[[int, Mapping[str, int]], Preparing[T]]


class GroupCommit(_Groups[_Queued], Generic[T, A]):
    """New aggregates and changes of stored ones, of one application, appended in groups.

    The leader calls `prepare(count, numbered)` once for its group: how to learn what each of
    `count` new aggregates will be made from (a fresh number, say), and fresh numbers of each kind
    the group's changes asked for (`numbered`: how many of each), read in the same round trip as
    the aggregates the group's changes are about (`Preparing`). It makes the new aggregates,
    decides each change, and saves the lot in one transaction.
    """

    def __init__(self, app: Application[UUID], prepare: Prepare[T]) -> None:
        super().__init__()
        self.app = app
        self.prepare = prepare
        # Every event store here records through a chained recorder (ugc/platform/store.py).
        self._log = cast(ChainedLog, app.recorder)
        self._kept = LRU[UUID, A](KEPT)  # aggregate id -> as saved here last; never changed once kept

    def append(self, make: Callable[[T], A]) -> tuple[A, Positions]:
        """Make the aggregate from what was prepared for it, append its events; it and where they landed.

        What `make` raises fails this call alone. A failed save (but a clash of another caller's
        change) fails every call of its group, and nothing of the group is written.
        """
        entry: _Entry[T, A] = _Entry(make=make)
        self._enqueue(entry)
        if entry.error is not None:
            raise entry.error
        assert entry.aggregate is not None
        return entry.aggregate, entry.positions

    def change(self, aggregate_id: UUID, decide: Callable[[A], R]) -> tuple[A, R, Positions]:
        """Let `decide` change the aggregate as stored now and append what it recorded: the aggregate
        as decided (not to be changed further), what `decide` returned, where its events landed.

        What `decide` raises fails this call alone, as does an id nothing was stored under
        (AggregateNotFoundError). Raises IntegrityError if another process appended to the
        aggregate after the group loaded it: decide again (`saving.retrying`), on the new state.
        """
        return self.change_numbered(aggregate_id, None, lambda aggregate, _: decide(aggregate))

    def change_numbered(
        self, aggregate_id: UUID, kind: str | None, decide: Callable[[A, int | None], R]
    ) -> tuple[A, R, Positions]:
        """`change`, with a fresh number of `kind` for `decide` to record under (None if no `kind`),
        taken by the leader for the whole group; a call that fails leaves a gap."""
        entry: _Change[A] = _Change(aggregate_id=aggregate_id, numbered=kind, decide=decide)
        self._enqueue(entry)
        if entry.error is not None:
            raise entry.error
        assert entry.aggregate is not None
        return entry.aggregate, cast(R, entry.result), entry.positions

    def _take(self) -> list[_Queued]:
        """The next group: up to MAX_GROUP entries, one change per aggregate (the others wait)."""
        group: list[_Queued] = []
        changing: set[UUID] = set()
        rest: list[_Queued] = []
        for entry in self._queue:
            aggregate_id = entry.aggregate_id if isinstance(entry, _Change) else None
            if len(group) < MAX_GROUP and aggregate_id not in changing:
                group.append(entry)
                if aggregate_id is not None:
                    changing.add(aggregate_id)
            else:
                rest.append(entry)
        self._queue = rest
        return group

    def _save(self, group: list[_Queued]) -> None:
        failure: BaseException | None = None
        try:
            news = [entry for entry in group if isinstance(entry, _Entry)]
            changes = [entry for entry in group if isinstance(entry, _Change)]
            # Kinds in one order whatever the group's: the statement that takes the numbers is then
            # one of few texts, which PostgreSQL prepares (ChainedPostgresRecorder.select_streams).
            numbered = dict(sorted(Counter(entry.numbered for entry in changes if entry.numbered is not None).items()))
            preparing = self.prepare(len(news), numbered) if news or numbered else None
            loaded, row = self._load(
                [entry.aggregate_id for entry in changes if entry.aggregate_id is not None],
                beside=preparing.query if preparing is not None else None,
            )
            if preparing is not None:
                self._prepared(news, changes, numbered, preparing.finish(row))
            self._append(self._remake(news), self._decide(changes, loaded))
        except BaseException as error:
            failure = error
            raise
        finally:
            _finish(group, failure)

    @staticmethod
    def _prepared(
        news: list[_Entry[T, A]],
        changes: list[_Change[A]],
        numbered: Mapping[str, int],
        prepared_for: tuple[Sequence[T], Mapping[str, Sequence[int]]],
    ) -> None:
        """Give each of `news` what it is made from, and each of `changes` the number it asked for."""
        prepared, numbers = prepared_for
        for entry, made_from in zip(news, prepared, strict=True):
            entry.prepared = made_from
        fresh = {kind: iter(numbers[kind]) for kind in numbered}
        for change in changes:
            if change.numbered is not None:
                change.number = next(fresh[change.numbered])

    def _remake(self, news: list[_Entry[T, A]]) -> list[_Entry[T, A]]:
        """Make the aggregates of `news` from what was prepared for them (again after a failed save);
        those made (a refusal fails its caller)."""
        made: list[_Entry[T, A]] = []
        for entry in news:
            try:
                assert entry.make is not None
                entry.aggregate = entry.context.run(entry.make, cast(T, entry.prepared))
                entry.context.run(announce, self.app.name, [entry.aggregate])
                made.append(entry)
            except Exception as error:
                entry.error = error
        return made

    def _decide(self, changes: list[_Change[A]], loaded: Mapping[UUID, A]) -> list[_Change[A]]:
        """Decide each of `changes` on its aggregate as `loaded`; those whose decision recorded events
        (one that recorded none is done, with nothing appended; a refusal fails its caller)."""
        decided: list[_Change[A]] = []
        for entry in changes:
            assert entry.aggregate_id is not None and entry.decide is not None
            aggregate = loaded.get(entry.aggregate_id)
            if aggregate is None:
                entry.error = AggregateNotFoundError(entry.aggregate_id)
                continue
            try:
                entry.result = entry.context.run(entry.decide, aggregate, entry.number)
                if aggregate.pending_events:
                    entry.context.run(announce, self.app.name, [aggregate])
            except Exception as error:
                entry.error = error
                continue
            entry.aggregate = aggregate
            if aggregate.pending_events:
                decided.append(entry)
        return decided

    def _load(self, ids: list[UUID], *, beside: Query | None) -> tuple[dict[UUID, A], Row | None]:
        """The aggregates of `ids` as stored now, each a copy of its own to change, in one read: a
        kept one with the events appended since (by other processes), the others from their whole
        stream. An id with nothing stored under it is left out. With them, the row of `beside`, read
        in the same round trip."""
        if not ids and beside is None:
            return {}, None
        kept = {aggregate_id: self._kept.get(aggregate_id) for aggregate_id in ids}
        stored, row = self._log.select_streams(
            {i: aggregate.version if aggregate else 0 for i, aggregate in kept.items()}, beside
        )
        mapper = self.app.mapper
        loaded: dict[UUID, A] = {}
        for aggregate_id, events in stored.items():
            base = kept[aggregate_id]
            aggregate = deepcopy(base) if base is not None else None
            # The library's project_aggregate, without its isinstance of a Protocol per event (~13 µs).
            for stored_event in events:
                aggregate = cast(CanMutateProtocol[A], mapper.to_domain_event(stored_event)).mutate(aggregate)
            if aggregate is not None:
                loaded[aggregate_id] = aggregate
        return loaded, row

    def _append(self, made: list[_Entry[T, A]], changes: list[_Change[A]]) -> None:
        """Save the group; a change's clash fails the changes, and the new aggregates go again alone."""
        new = [entry.aggregate for entry in made if entry.aggregate is not None]
        events = [event for aggregate in new for event in aggregate.pending_events]
        changed = [entry.aggregate for entry in changes if entry.aggregate is not None]
        try:
            recordings = self.app.save(*new, *changed) if new or changed else []
        except IntegrityError as clash:
            if events and self._stored_already(events):
                # The library retried a COMMIT that had gone through: the whole group is stored.
                # Where exactly it landed is not known: the head is at or past it.
                head = self.app.recorder.max_notification_id() or 0
                for entry in [*made, *changes]:
                    entry.positions = {self.app.name: head}
                return
            if not changes:
                raise
            metrics.VERSION_CONFLICTS.labels(self.app.name).inc()
            for entry in changes:  # each caller decides again and comes back in a later group
                entry.error = clash
            if made:  # their events went with the failed save: made again from the same values
                self._append(self._remake(made), [])
            return
        if recordings:
            metrics.APPENDS.labels(self.app.name).inc()
        for aggregate in [*new, *changed]:
            self._kept.put(aggregate.id, aggregate)
        landed = _landed(recordings)
        for entry in made:
            assert entry.aggregate is not None
            entry.positions = appended(self.app.name, landed[entry.aggregate.id])
        for entry in changes:
            assert entry.aggregate is not None
            entry.positions = appended(self.app.name, landed[entry.aggregate.id])

    def _stored_already(self, events: Sequence[DomainEventProtocol[UUID]]) -> bool:
        """Whether every one of `events` is in the store as it is: this group's own save.

        New aggregates clash with nobody (prepared numbers make fresh ids), so a clash on them most
        likely means the library retried this save after the connection broke during its COMMIT (a
        terminated session, a restarted server) and the COMMIT had gone through. Only if the stored
        events are these very ones (same fields, same timestamps) is the group taken as saved.
        """
        mapper = self.app.mapper
        for event in events:
            version = event.originator_version
            stored = self.app.recorder.select_events(event.originator_id, gt=version - 1, lte=version)
            ours = mapper.to_domain_event(mapper.to_stored_event(event))  # both sides transcoded alike
            if not stored or mapper.to_domain_event(stored[0]) != ours:
                return False
        return bool(events)
