"""Notifications: which events tell whom what, their ids, and what a user has read.

Every event that notifies someone carries `notify` (the user) and `notice` (one Russian line).
A notification's id derives from where its event sits in the log — `position * 8 + index of the
application` — so a rebuilt read model gives every notification the id it had before, and a
command can find the event behind an id on the write side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import Caused, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id
from ugc.messaging import Message
from ugc.orders import Order

# Applications whose events notify, and the index each contributes to a notification's id.
SOURCES: dict[str, int] = {"orders": 1, "messaging": 2}
_ID_STRIDE = 8

TYPES: dict[type, str] = {
    Order.Placed: "new_order",
    Order.Accepted: "order_accepted",
    Order.Updated: "order_updated",
    Order.WorkDelivered: "order_delivered",
    Order.RevisionRequested: "revision_requested",
    Order.Completed: "order_completed",
    Order.AutoCompleted: "order_completed",
    Order.Cancelled: "order_cancelled",
    Order.Reviewed: "new_review",
    Message.Sent: "new_message",
}


def notification_id(source: str, position: int) -> int:
    return position * _ID_STRIDE + SOURCES[source]


def notification_source(notification: int) -> tuple[str, int] | None:
    """The application and log position behind a notification id (None if no id could be one)."""
    position, index = divmod(notification, _ID_STRIDE)
    source = next((name for name, number in SOURCES.items() if number == index), None)
    if source is None or position < 1:
        return None
    return source, position


def notification_type(domain_event: Any) -> str | None:
    return TYPES.get(type(domain_event))


def inbox_id(user: int) -> UUID:
    return aggregate_id("notifications-read", user)


@stored_as
class NotificationsRead(Aggregate):
    """What one user marked as read: single notifications, or everything up to log positions."""

    @dataclass(frozen=True)
    class Started(Caused, Aggregate.Created):
        TOPIC = "ugc.NotificationsRead.Started"
        class_version = 2
        user: int
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["user"]))  # a user marks only their own notifications

    @dataclass(frozen=True)
    class Read(Caused, Aggregate.Event):
        TOPIC = "ugc.NotificationsRead.Read"
        class_version = 2
        user: int
        notifications: list[int]
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["user"]))

    @dataclass(frozen=True)
    class AllRead(Caused, Aggregate.Event):
        TOPIC = "ugc.NotificationsRead.AllRead"
        class_version = 2
        user: int
        up_to: dict[str, int]
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["user"]))

    @staticmethod
    def create_id(user: int, **_: Any) -> UUID:
        return inbox_id(user)

    @event(Started)
    def __init__(self, *, user: int, at: datetime, actor: str) -> None:
        self.user = user

    def read(self, notifications: list[int], at: datetime) -> None:
        self._read(self.user, notifications, at, user_actor(self.user))

    def read_all(self, up_to: dict[str, int], at: datetime) -> None:
        """Everything notified by events up to these log positions (application -> position)."""
        self._all_read(self.user, up_to, at, user_actor(self.user))

    @event(Read)
    def _read(self, user: int, notifications: list[int], at: datetime, actor: str) -> None:
        pass

    @event(AllRead)
    def _all_read(self, user: int, up_to: dict[str, int], at: datetime, actor: str) -> None:
        pass
