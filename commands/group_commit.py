"""Appending new aggregates from many threads in shared transactions (group commit).

The library locks an application's events table for every `save()`, so one save per new order
caps placing at about a sixth of what PostgreSQL commits per second here (bench/RESULTS.md).
New aggregates cannot clash with one another, so those that arrive while one save is under way
wait for it to end and then go together: one transaction, one lock, one NOTIFY, one COMMIT.
Alone, an aggregate goes at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from commands.saving import Positions

MAX_GROUP = 200  # aggregates per transaction: bounds what one failure takes down with it


@dataclass(eq=False)
class _Entry:
    aggregate: Aggregate
    positions: Positions = field(default_factory=dict)
    error: BaseException | None = None
    finished: bool = False


class GroupCommit:
    """New aggregates of one application, appended in groups.

    Whoever finds no save under way leads: it takes everything queued so far, saves it, and wakes
    the rest; those whose aggregates were not in that group elect the next leader among themselves.
    """

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app
        self._changed = threading.Condition()
        self._queue: list[_Entry] = []
        self._saving = False

    def append(self, aggregate: Aggregate) -> Positions:
        """Append the new aggregate's pending events; where they landed.

        A failed save fails every call of its group, and nothing of the group is written.
        """
        entry = _Entry(aggregate)
        with self._changed:
            self._queue.append(entry)
            while self._saving and not entry.finished:
                self._changed.wait()
            leading = not entry.finished
            if leading:
                self._saving = True
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        if leading:
            try:
                self._save(group)
            finally:
                with self._changed:
                    self._saving = False
                    self._changed.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.positions

    def _save(self, group: list[_Entry]) -> None:
        failure: BaseException | None = None
        try:
            recordings = self.app.save(*(entry.aggregate for entry in group))
            landed: dict[UUID, int] = {}
            for recording in recordings:
                originator = recording.domain_event.originator_id
                landed[originator] = max(landed.get(originator, 0), recording.notification.id)
            for entry in group:
                entry.positions = {self.app.name: landed[entry.aggregate.id]}
        except BaseException as error:
            failure = error
            raise
        finally:
            with self._changed:
                for entry in group:
                    entry.error = failure
                    entry.finished = True
