"""Appending new aggregates from many threads in shared transactions (group commit).

The library locks an application's events table for every `save()`, so one save per new order
caps placing at about a sixth of what PostgreSQL commits per second here (bench/RESULTS.md).
New aggregates cannot clash with one another, so those that arrive while one save is under way
wait for it to end and then go together: one call to prepare them (their numbers, say), one
transaction, one lock, one NOTIFY, one COMMIT. Alone, an aggregate goes at once.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Recording

from commands.saving import Positions, appended
from ugc.platform import metrics

MAX_GROUP = 200  # aggregates per transaction: bounds what one failure takes down with it

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")  # what each aggregate of a group is made from, prepared for the whole group at once


@dataclass(eq=False)
class _Entry(Generic[T, A]):
    make: Callable[[T], A]
    # The caller's context, which `make` runs in whoever leads: the events it records name the
    # caller's request (ugc.events.current_request), not the leader's.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    aggregate: A | None = None
    positions: Positions = field(default_factory=dict)
    error: BaseException | None = None
    finished: bool = False
    # Set once: when the entry's group was saved (or failed), or when its caller is to lead the next group.
    woken: threading.Event = field(default_factory=threading.Event)


class GroupCommit(Generic[T, A]):
    """New aggregates of one application, made and appended in groups.

    Whoever finds no save under way leads: it takes everything queued so far, calls
    `prepare(count)` once for what each will be made from (a fresh number, say), makes the
    aggregates, saves them, wakes the callers of that group, and hands the lead to the first caller
    still queued, if any. Each waiting caller is woken once (not all of them at every save).
    """

    def __init__(self, app: Application[UUID], prepare: Callable[[int], Sequence[T]]) -> None:
        self.app = app
        self.prepare = prepare
        self._lock = threading.Lock()
        self._queue: list[_Entry[T, A]] = []  # not yet taken into a group
        self._saving = False  # a leader is under way; while not, the queue is empty

    def append(self, make: Callable[[T], A]) -> tuple[A, Positions]:
        """Make the aggregate from what was prepared for it, append its events; it and where they landed.

        What `make` raises fails this call alone. A failed save fails every call of its group, and
        nothing of the group is written.
        """
        entry = _Entry(make)
        with self._lock:
            self._queue.append(entry)
            queued_behind_a_save, self._saving = self._saving, True
        if queued_behind_a_save:
            entry.woken.wait()
        if not entry.finished:  # leading: the entry is first in the queue
            self._lead()
        if entry.error is not None:
            raise entry.error
        assert entry.aggregate is not None
        return entry.aggregate, entry.positions

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            self._save(group)
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].woken.set()  # the next leader
                else:
                    self._saving = False

    def _save(self, group: list[_Entry[T, A]]) -> None:
        made: list[_Entry[T, A]] = []
        failure: BaseException | None = None
        try:
            for entry, prepared in zip(group, self.prepare(len(group)), strict=True):
                try:
                    entry.aggregate = entry.context.run(entry.make, prepared)
                    made.append(entry)
                except Exception as error:
                    entry.error = error
            aggregates = [entry.aggregate for entry in made if entry.aggregate is not None]
            events = [event for aggregate in aggregates for event in aggregate.pending_events]
            try:
                recordings = self.app.save(*aggregates) if aggregates else []
            except IntegrityError:
                if not self._stored_already(events):
                    raise
                # Where exactly they landed is not known: the head is at or past it.
                head = self.app.recorder.max_notification_id() or 0
                for entry in made:
                    entry.positions = {self.app.name: head}
                return
            if recordings:
                metrics.APPENDS.labels(self.app.name).inc()
            landed: dict[UUID, list[Recording[UUID]]] = {}
            for recording in recordings:
                landed.setdefault(recording.domain_event.originator_id, []).append(recording)
            for entry in made:
                assert entry.aggregate is not None
                entry.positions = appended(self.app.name, landed[entry.aggregate.id])
        except BaseException as error:
            failure = error
            raise
        finally:
            for entry in group:
                if failure is not None and entry.error is None:
                    entry.error = failure
                entry.finished = True
                entry.woken.set()

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
