"""Notifications: which events tell whom what, their ids, and what a user has read.

Events record facts, not whom to tell or in which words: an order event tells the other party to
whoever acted, and both parties when the scheduler did; a message tells its recipient
(`recipients`). The words come from the notifications projection's catalogue, keyed by the
notification's type and the role of whoever acted (`acting_role`).

A notification's id derives from where its event sits in the log — `position * 8 + index`, the
index naming the application and which of the event's recipients it tells — so a rebuilt read
model gives every notification the id it had before, and a command can find the event and the
recipient behind an id on the write side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import Caused, actor_parts, actor_user, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id
from ugc.messaging import Message
from ugc.orders import Order

# Applications whose events notify, and the index each contributes to a notification's id for
# the event's first recipient; the second (the buyer, when the scheduler completed an order) has
# the index plus len(SOURCES).
SOURCES: dict[str, int] = {"orders": 1, "messaging": 2}
RECIPIENTS_AT_MOST = 2
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


def notification_id(source: str, position: int, nth: int = 0) -> int:
    """The id of the notification an event at `position` of `source`'s log gives its `nth` recipient."""
    return position * _ID_STRIDE + SOURCES[source] + nth * len(SOURCES)


def notification_source(notification: int) -> tuple[str, int, int] | None:
    """The application, log position and recipient (nth) behind a notification id (None if no id could be one)."""
    position, index = divmod(notification, _ID_STRIDE)
    nth, number = divmod(index - 1, len(SOURCES))
    source = next((name for name, index in SOURCES.items() if index == number + 1), None)
    if source is None or position < 1 or not 0 <= nth < RECIPIENTS_AT_MOST:
        return None
    return source, position, nth


def notification_type(domain_event: Any) -> str | None:
    return TYPES.get(type(domain_event))


@dataclass(frozen=True)
class Parties:
    """An order's buyer and creator: what an order event's notification is derived from."""

    buyer: int
    creator: int


def acting_role(domain_event: Any, parties: Parties | None) -> str:
    """Who caused a notifying event: `sender` of a message; `buyer`, `creator`, `system` (the
    scheduler) or `operator` (a CLI command's, e.g. an erasure's cancellation) of an order's."""
    if isinstance(domain_event, Message.Sent):
        return "sender"
    assert parties is not None, "an order event's notification needs the order's parties"
    user = actor_user(domain_event.actor)
    if user is None:
        return "operator" if actor_parts(domain_event.actor)[0] == "operator" else "system"
    return "buyer" if user == parties.buyer else "creator" if user == parties.creator else "system"


def recipients(domain_event: Any, parties: Parties | None, role: str | None = None) -> tuple[int, ...]:
    """Whom a notifying event tells, in the order of their ids: a message's recipient; the other
    party to whoever acted on an order, or to the party whose erasure the operator cancelled it
    for; both parties, the creator first, of one that neither party acted on (the scheduler, the
    operator, whose cancellations stored before they named the erased party say nothing more).
    `role`: its `acting_role`, when the caller has it already."""
    if isinstance(domain_event, Message.Sent):
        return (int(domain_event.recipient),)
    assert parties is not None, "an order event's notification needs the order's parties"
    if isinstance(domain_event, Order.Cancelled) and domain_event.erased_party is not None:
        return (parties.buyer,) if domain_event.erased_party == parties.creator else (parties.creator,)
    role = role or acting_role(domain_event, parties)
    if role in ("system", "operator"):
        return (parties.creator, parties.buyer)
    return (parties.buyer,) if role == "creator" else (parties.creator,)


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

    # 2: the state holds what was read (`marked`, `up_to`), so marking again records nothing. A
    # snapshot taken before starts with neither: its next mark records once more.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.update(marked=[], up_to={})

    @staticmethod
    def create_id(user: int, **_: Any) -> UUID:
        return inbox_id(user)

    @event(Started)
    def __init__(self, *, user: int, at: datetime, actor: str) -> None:
        self.user = user
        self.marked: list[int] = []  # notifications read one by one (a list: snapshots are JSON)
        self.up_to: dict[str, int] = {}  # application -> log position read all up to

    def read(self, notifications: list[int], at: datetime) -> None:
        """Mark these read; those read already, one by one or by a "read all", record nothing."""
        unread = [number for number in notifications if number not in self.marked and not self._covered(number)]
        if unread:
            self._read(self.user, unread, at, user_actor(self.user))

    def read_all(self, up_to: dict[str, int], at: datetime) -> None:
        """Everything notified by events up to these log positions (application -> position); nothing
        is recorded when no position moves."""
        if any(position > self.up_to.get(source, 0) for source, position in up_to.items()):
            self._all_read(self.user, up_to, at, user_actor(self.user))

    def _covered(self, notification: int) -> bool:
        source = notification_source(notification)
        return source is not None and source[1] <= self.up_to.get(source[0], 0)

    @event(Read)
    def _read(self, user: int, notifications: list[int], at: datetime, actor: str) -> None:
        self.marked.extend(number for number in notifications if number not in self.marked)

    @event(AllRead)
    def _all_read(self, user: int, up_to: dict[str, int], at: datetime, actor: str) -> None:
        for source, position in up_to.items():
            self.up_to[source] = max(position, self.up_to.get(source, 0))
