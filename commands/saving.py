"""Appending to an event store and reporting where the events landed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

T = TypeVar("T")

# Application name -> notification id of the last event appended: what read models must reach.
Positions = dict[str, int]


def save(app: Application[UUID], *aggregates: Aggregate) -> Positions:
    """Append every pending event of `aggregates` in one transaction.

    Raises eventsourcing's IntegrityError when another writer got there first.
    """
    recordings = app.save(*aggregates)
    if not recordings:
        return {}
    return {app.name: max(r.notification.id for r in recordings)}


def retrying(command: Callable[[], T], attempts: int = 5) -> T:
    """Run a load-decide-save `command`, again against the new state if another writer won the race."""
    for _ in range(attempts - 1):
        try:
            return command()
        except IntegrityError:
            continue
    return command()
