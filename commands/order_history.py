"""An order's history for auditors: its events, oldest first, read from the log itself."""

from __future__ import annotations

from typing import Any

from commands.orders import OrderCommands
from ugc.orders import EVENT_NAMES, SYSTEM, Order, actor_of, event_data


def order_history(orders: OrderCommands, order: int) -> list[dict[str, Any]]:
    """Each event: its name, version, when, who (the parties' names come from the Placed event), and its data."""
    events = orders.history(order)
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


def describe(entry: dict[str, Any]) -> str:
    """One line a person can read: `v3 2026-03-01 12:00:00 UTC  WorkDelivered  by anna  message='...'`."""
    data = ", ".join(f"{name}={value!r}" for name, value in entry["data"].items() if name not in ("notify", "notice"))
    when = entry["occurred_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"v{entry['version']:<3} {when}  {entry['type']:<19} by {entry['actor']['username']:<16} {data}"
