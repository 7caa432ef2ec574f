"""An order's past, read from the log itself: its history for auditors, and the order as it was.

Neither is a read table: both replay the order's stored events, which the caller hands over as
the orders log (`EventLog`; the composition root passes the orders application's event store).
The read side therefore never imports the event store, and reads the log without going through
the commands that write it. `order_as_of` folds the events exactly as the library's repository
does (`event.mutate` in turn), from one read of the log for a version or a time alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from ugc.errors import NotFound
from ugc.orders import EVENT_NAMES, SYSTEM, Order, actor_of, event_data, order_id
from ugc.platform.dialect import Row


class EventLog(Protocol):
    """What reading an order's past needs of the event store: an aggregate's events, oldest first."""

    def get(self, originator_id: UUID) -> Iterable[Any]: ...


def order_events(log: EventLog, order: int) -> list[Any]:
    """The order's events, oldest first: the log itself (not a read model)."""
    events = list(log.get(order_id(order)))
    if not events:
        raise NotFound("order_not_found")
    return events


def order_history(log: EventLog, order: int) -> list[dict[str, Any]]:
    """Each event: its name, version, when, who (the parties' names come from the Placed event), and its data."""
    events = order_events(log, order)
    placed = events[0]
    assert isinstance(placed, Order.Placed)
    names = {placed.buyer: placed.buyer_username, placed.creator: placed.creator_username, SYSTEM: "system"}
    return [
        {
            "version": e.originator_version,
            "type": EVENT_NAMES[type(e)],
            "occurred_at": e.at,
            "actor": {"id": actor_of(e) or None, "username": names.get(actor_of(e), "")},
            "data": event_data(e),
        }
        for e in events
    ]


def order_as_of(log: EventLog, order: int, *, version: int | None = None, moment: datetime | None = None) -> Row:
    """The order in the read model's shape right after its event `version`, or after the last
    event at or before `moment`; NotFound when it did not exist yet."""
    events = order_events(log, order)
    if moment is not None:
        reached = [e.originator_version for e in events if e.at <= moment]
        if not reached:
            raise NotFound("order_not_found")
        version = reached[-1]
    state: Order | None = None
    for e in events:
        if version is None or e.originator_version <= version:
            state = e.mutate(state)
    assert state is not None
    return state.as_row()


def describe(entry: dict[str, Any]) -> str:
    """One line a person can read: `v3 2026-03-01 12:00:00 UTC  WorkDelivered  by anna  message='...'`."""
    data = ", ".join(f"{name}={value!r}" for name, value in entry["data"].items() if name not in ("notify", "notice"))
    when = entry["occurred_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"v{entry['version']:<3} {when}  {entry['type']:<19} by {entry['actor']['username']:<16} {data}"
