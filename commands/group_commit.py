"""Appending new aggregates from many threads in shared transactions (group commit).

The library locks an application's events table for every `save()`, so one save per new order
caps placing at about a sixth of what PostgreSQL commits per second here (bench/RESULTS.md).
New aggregates cannot clash with one another, so the orders that arrive while one save is under
way wait for it to end and then go together: one sequence round trip numbers them all, one
transaction (one lock, one NOTIFY, one COMMIT) appends them all. Alone, an order goes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from commands.saving import Positions
from ugc.database import Database

A = TypeVar("A", bound=Aggregate)

MAX_BATCH = 200  # aggregates per transaction: bounds what one failure takes down with it


@dataclass(eq=False)
class _Entry(Generic[A]):
    make: Callable[[int], A]  # the new aggregate, given its public number
    created: A | None = None
    positions: Positions = field(default_factory=dict)
    error: BaseException | None = None
    finished: bool = False


class GroupCommit(Generic[A]):
    """New aggregates of one application, numbered from the `kind` sequence, appended in groups.

    Whoever finds no save under way leads: it takes everything queued so far, saves it, and wakes
    the rest; those whose entries were not in that group elect the next leader among themselves.
    """

    def __init__(self, app: Application[UUID], db: Database, kind: str) -> None:
        self.app = app
        self.db = db
        self.kind = kind
        self._changed = threading.Condition()
        self._queue: list[_Entry[A]] = []
        self._saving = False

    def append(self, make: Callable[[int], A]) -> tuple[A, Positions]:
        """Create the aggregate with a fresh number and append it; where its events landed.

        An error in `make` fails only this call; an error in saving fails every call of the group
        (nothing of the group was written: one transaction).
        """
        entry: _Entry[A] = _Entry(make)
        with self._changed:
            self._queue.append(entry)
            while self._saving and not entry.finished:
                self._changed.wait()
            if not entry.finished:
                self._saving = True
                group, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if not entry.finished:
            try:
                self._save(group)
            finally:
                with self._changed:
                    self._saving = False
                    self._changed.notify_all()
        if entry.error is not None:
            raise entry.error
        assert entry.created is not None
        return entry.created, entry.positions

    def _save(self, group: list[_Entry[A]]) -> None:
        failure: BaseException | None = None
        try:
            made: list[tuple[_Entry[A], A]] = []
            for entry, number in zip(group, self.db.next_numbers(self.kind, len(group)), strict=True):
                try:
                    made.append((entry, entry.make(number)))
                except Exception as error:  # one caller's bad aggregate is that caller's error alone
                    entry.error = error
            recordings = self.app.save(*(aggregate for _, aggregate in made))
            landed: dict[UUID, int] = {}
            for recording in recordings:
                originator = recording.domain_event.originator_id
                landed[originator] = max(landed.get(originator, 0), recording.notification.id)
            for entry, aggregate in made:
                entry.created = aggregate
                entry.positions = {self.app.name: landed[aggregate.id]}
        except BaseException as error:
            failure = error
            raise
        finally:
            self._finish(group, failure)

    def _finish(self, group: list[_Entry[A]], error: BaseException | None) -> None:
        with self._changed:
            for entry in group:
                if error is not None and entry.error is None:
                    entry.error = error
                entry.finished = True
            self._changed.notify_all()
