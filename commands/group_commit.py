"""Appending aggregates from many threads in shared transactions (group commit).

The library locks an application's events table for every `save()` until its COMMIT, so one save
per command caps the commands at one table lock at a time (bench/RESULTS.md). Commands that arrive
while one save is under way wait for it to end and then go together: one transaction, one lock,
one NOTIFY, one COMMIT. Alone, a command goes at once.

`GroupCommit` takes both kinds of command of one application into the same groups:

* new aggregates (placing orders), made by the leader from what it prepared for the group at once;
* changed aggregates, loaded and decided by their callers (`save`); a group holds one command per
  aggregate. A command decided on a version an earlier group of this process has since moved
  fails alone, before its group is saved; one that clashes in the store (another process appended
  to its aggregate first) fails the changes of its group, with the store's IntegrityError, so each
  caller decides again on the new state (`change`); the group's new aggregates, which cannot clash,
  are then appended again without them.

One queue for both: two would take turns at the table lock, a COMMIT each per round, and a
lifecycle's follow-up commands would wait for placing's groups and the other way round (issue 15).

Before a save, each command's request with an `Idempotency-Key` records what it is about to append
(commands/intents.py), in the caller's context: a change on the caller's thread before it queues,
a new aggregate in the leader once it has made it (its id comes from what the leader prepared). A
command whose record fails is not saved; it fails alone.
"""

from __future__ import annotations

import contextvars
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Recording

from commands.intents import announce
from commands.saving import Positions, appended
from ugc.platform import metrics
from ugc.platform.cache import LRU

MAX_GROUP = 200  # aggregates per transaction: bounds what one failure takes down with it
# Aggregates whose last version saved here GroupCommit remembers: only a command queued behind the
# group that saved its aggregate can be stale, so a few groups' worth (MAX_GROUP each) is plenty.
SAVED_VERSIONS_KEPT = 1_000

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")  # what each aggregate of a group is made from, prepared for the whole group at once
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
class _Changed(_Queued):
    """Aggregates their caller changed, to append together."""

    aggregates: tuple[Aggregate, ...] = ()


class GroupCommit(_Groups[_Queued], Generic[T, A]):
    """New and changed aggregates of one application, appended in groups.

    The leader calls `prepare(count)` once for what each new aggregate of its group will be made from
    (a fresh number, say), makes them, and saves them with the group's changed aggregates.
    """

    def __init__(self, app: Application[UUID], prepare: Callable[[int], Sequence[T]]) -> None:
        super().__init__()
        self.app = app
        self.prepare = prepare
        self._saved = LRU[UUID, int](SAVED_VERSIONS_KEPT)  # aggregate -> the last version saved here

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

    def save(self, *aggregates: Aggregate) -> Positions:
        """Append the pending events of `aggregates` in one transaction, maybe with other callers';
        where they landed. Raises IntegrityError if another writer appended to one of them first."""
        announce(self.app.name, aggregates)
        entry = _Changed(aggregates=aggregates)
        self._enqueue(entry)
        if entry.error is not None:
            raise entry.error
        return entry.positions

    def _take(self) -> list[_Queued]:
        group: list[_Queued] = []
        taken: set[UUID] = set()
        rest: list[_Queued] = []
        for entry in self._queue:
            ids = {a.id for a in entry.aggregates} if isinstance(entry, _Changed) else set()
            if isinstance(entry, _Changed) and self._stale(entry):
                _finish([entry], IntegrityError("decided on a version saved over since"))
            elif len(group) < MAX_GROUP and not ids & taken:
                group.append(entry)
                taken |= ids
            else:
                rest.append(entry)
        self._queue = rest
        return group

    def _save(self, group: list[_Queued]) -> None:
        failure: BaseException | None = None
        try:
            made = self._make([entry for entry in group if isinstance(entry, _Entry)])
            changes = [entry for entry in group if isinstance(entry, _Changed)]
            self._append(made, changes)
        except BaseException as error:
            failure = error
            raise
        finally:
            _finish(group, failure)

    def _make(self, news: list[_Entry[T, A]]) -> list[_Entry[T, A]]:
        """Make the new aggregates of `news` from what `prepare` gives; those made (a refusal fails its caller)."""
        for entry, prepared in zip(news, self.prepare(len(news)) if news else [], strict=True):
            entry.prepared = prepared
        return self._remake(news)

    def _remake(self, news: list[_Entry[T, A]]) -> list[_Entry[T, A]]:
        """Make (again) the aggregates of `news` from what was prepared for them; those made."""
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

    def _append(self, made: list[_Entry[T, A]], changes: list[_Changed]) -> None:
        """Save the group; a change's clash fails the changes, and the new aggregates go again alone."""
        new = [entry.aggregate for entry in made if entry.aggregate is not None]
        events = [event for aggregate in new for event in aggregate.pending_events]
        changed = [aggregate for entry in changes for aggregate in entry.aggregates]
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
        for aggregate in changed:
            self._saved.put(aggregate.id, aggregate.version)
        landed = _landed(recordings)
        for entry in made:
            assert entry.aggregate is not None
            entry.positions = appended(self.app.name, landed[entry.aggregate.id])
        for entry in changes:
            own = [recording for a in entry.aggregates for recording in landed.get(a.id, [])]
            entry.positions = appended(self.app.name, own) if own else {}

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

    def _stale(self, entry: _Changed) -> bool:
        """Whether a version `entry` appends was saved here already: its decision is out of date."""
        for aggregate in entry.aggregates:
            pending = aggregate.pending_events
            saved = self._saved.get(aggregate.id)
            if pending and saved is not None and pending[0].originator_version <= saved:
                return True
        return False
