"""Orders and their lifecycle.

The rule book is one table, `RULES`: for each command, who may issue it and from which states,
and where it leads. The aggregate's methods look their rule up, so the code and the tests walk
the same table (DESIGN.md, "The order lifecycle").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import Conflict, InvalidField, NotAllowed, NotFound, WrongState
from ugc.events import SCHEDULER, Caused, actor_parts, actor_user, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id

PENDING, IN_PROGRESS, DELIVERED, COMPLETED, CANCELLED = "pending", "in_progress", "delivered", "completed", "cancelled"
STATUSES = (PENDING, IN_PROGRESS, DELIVERED, COMPLETED, CANCELLED)
OPEN_STATUSES = (PENDING, IN_PROGRESS, DELIVERED)

Role = Literal["buyer", "creator", "participant", "system"]
SYSTEM = 0  # the actor number of commands the scheduler issues


@dataclass(frozen=True)
class Rule:
    actor: Role
    sources: frozenset[str]
    target: str | None  # None: the status does not change
    # The order's flag without which the command is never allowed, whatever the status, and the
    # code of its 403 (a revision of an order whose service allows none).
    requires: tuple[str, str] | None = None


RULES: dict[str, Rule] = {
    "accept": Rule("creator", frozenset({PENDING}), IN_PROGRESS),
    "update": Rule("buyer", frozenset({PENDING}), None),
    "deliver": Rule("creator", frozenset({PENDING, IN_PROGRESS}), DELIVERED),
    "request_revision": Rule(
        "buyer", frozenset({DELIVERED}), IN_PROGRESS, requires=("allows_modifications", "modifications_not_allowed")
    ),
    "approve": Rule("buyer", frozenset({DELIVERED}), COMPLETED),
    "auto_complete": Rule("system", frozenset({DELIVERED}), COMPLETED),
    "cancel": Rule("participant", frozenset({PENDING, IN_PROGRESS}), CANCELLED),
    "review": Rule("buyer", frozenset({COMPLETED}), None),
}


def order_id(number: int) -> UUID:
    return aggregate_id("order", number)


def as_actor(number: int) -> str:
    """The stored actor of a command issued by user `number` (SYSTEM: the scheduler)."""
    return SCHEDULER if number == SYSTEM else user_actor(number)


def upcast_v1_v2(state: dict[str, Any]) -> None:
    """Version 1 stored the actor as a user number (SYSTEM: the scheduler), and whom to notify with which
    words; the notifications projection derives both now (projections/notification_texts.py)."""
    del state["notify"], state["notice"]
    upcast_cause(state, as_actor(state["actor"]))


@stored_as
class Order(Aggregate):
    @dataclass(frozen=True)
    class Placed(Caused, Aggregate.Created):
        TOPIC = "ugc.Order.Placed"
        class_version = 2
        number: int
        buyer: int
        buyer_username: str
        creator: int
        creator_profile: int
        creator_username: str
        service: int
        service_title: str
        price: Decimal
        options: list[dict[str, Any]]
        total_price: Decimal
        requirements: str
        delivery_date: str
        allows_modifications: bool
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            del state["notify"], state["notice"]
            upcast_cause(state, user_actor(state["buyer"]))  # the buyer places

    @dataclass(frozen=True)
    class Accepted(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.Accepted"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        at: datetime

    @dataclass(frozen=True)
    class Updated(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.Updated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class WorkDelivered(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.WorkDelivered"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        delivery: int
        message: str
        files: list[int]
        at: datetime

    @dataclass(frozen=True)
    class RevisionRequested(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.RevisionRequested"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        message: str
        at: datetime

    @dataclass(frozen=True)
    class Completed(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.Completed"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        at: datetime

    @dataclass(frozen=True)
    class AutoCompleted(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.AutoCompleted"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        at: datetime

    @dataclass(frozen=True)
    class Cancelled(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.Cancelled"
        class_version = 3
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        reason: str
        at: datetime
        # The party whose erasure the operator cancelled the order for; None: any other cancellation.
        erased_party: int | None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Version 2 did not say whose erasure an operator's cancellation was for."""
            state["erased_party"] = None

    @dataclass(frozen=True)
    class Reviewed(Caused, Aggregate.Event):
        TOPIC = "ugc.Order.Reviewed"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_v1_v2)
        creator_profile: int
        review: int
        rating: int
        content: str
        at: datetime

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return order_id(number)

    @event(Placed)
    def __init__(
        self,
        *,
        number: int,
        buyer: int,
        buyer_username: str,
        creator: int,
        creator_profile: int,
        creator_username: str,
        service: int,
        service_title: str,
        price: Decimal,
        options: list[dict[str, Any]],
        total_price: Decimal,
        requirements: str,
        delivery_date: str,
        allows_modifications: bool,
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.buyer = buyer
        self.buyer_username = buyer_username
        self.creator = creator
        self.creator_profile = creator_profile
        self.creator_username = creator_username
        self.service = service
        self.service_title = service_title
        self.price = price
        self.options = options
        self.total_price = total_price
        self.status = PENDING
        self.requirements = requirements
        self.delivery_date = delivery_date
        self.allows_modifications = allows_modifications
        self.created_at = at
        self.updated_at = at
        # When the status last changed, on the deciding process's clock: a command that arrived
        # before it was meant for the status before it (commands/status_seen.py).
        self.status_since = at
        self.delivered_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.cancelled_at: datetime | None = None
        self.cancellation_reason: str | None = None
        self.reviewed = False

    @classmethod
    def place(cls, **fields: Any) -> Order:
        if fields["buyer"] == fields["creator"]:
            raise InvalidField("service_id", "own_service")
        return cls(**fields, actor=user_actor(fields["buyer"]))

    # Deciding ------------------------------------------------------------------------------

    def role_of(self, user: int) -> Role | None:
        if user == SYSTEM:
            return "system"
        if user == self.buyer:
            return "buyer"
        if user == self.creator:
            return "creator"
        return None

    def check_party(self, command: str, actor: int) -> None:
        """Raise unless `actor` is who may ever issue `command` on this order: 404 outsiders, 403 the
        wrong party or a command the order never allows. Nothing of the order's state is looked at, so
        whatever else a command is checked against (a version, a status) comes after this, and a
        caller refused here learns nothing of it."""
        rule = RULES[command]
        role = self.role_of(actor)
        if role is None:
            raise NotFound("order_not_found")
        allowed = role == rule.actor or (rule.actor == "participant" and role in ("buyer", "creator"))
        if not allowed:
            raise NotAllowed()
        if rule.requires is not None and not getattr(self, rule.requires[0]):
            raise NotAllowed(rule.requires[1])

    def check(self, command: str, actor: int) -> None:
        """Raise unless `actor` may issue `command` now: `check_party`, then 409 in a wrong state."""
        self.check_party(command, actor)
        if self.status not in RULES[command].sources:
            raise WrongState(self.status, "order_wrong_status")

    # Commands ------------------------------------------------------------------------------

    def accept(self, actor: int, at: datetime) -> None:
        self.check("accept", actor)
        self._accepted(as_actor(actor), at)

    def update(self, actor: int, changes: dict[str, Any], at: datetime) -> None:
        self.check("update", actor)
        changed = {k: v for k, v in changes.items() if k in ("requirements", "delivery_date") and getattr(self, k) != v}
        if changed:
            self._updated(as_actor(actor), changed, at)

    def deliver(self, actor: int, delivery: int, message: str, files: list[int], at: datetime) -> None:
        self.check("deliver", actor)
        self._delivered(as_actor(actor), delivery, message, files, at)

    def request_revision(self, actor: int, message: str, at: datetime) -> None:
        self.check("request_revision", actor)
        self._revision_requested(as_actor(actor), message, at)

    def approve(self, actor: int, at: datetime) -> None:
        self.check("approve", actor)
        self._completed(as_actor(actor), at)

    def auto_complete(self, at: datetime) -> None:
        self.check("auto_complete", SYSTEM)
        self._auto_completed(SCHEDULER, at)

    def cancel(self, actor: int, reason: str, at: datetime) -> None:
        self.check("cancel", actor)
        self._cancelled(as_actor(actor), reason, at, None)

    def cancel_for_erased(self, actor: str, erased_party: int, reason: str, at: datetime) -> None:
        """Cancel on the operator's word because `erased_party` was erased (nobody is left to deliver
        or approve): from the states a party may cancel in, recorded as any cancellation is, with
        the erased party named, so that only the other one is told."""
        if actor_parts(actor)[0] != "operator" or self.role_of(erased_party) not in ("buyer", "creator"):
            raise NotAllowed()
        if self.status not in RULES["cancel"].sources:
            raise WrongState(self.status, "order_wrong_status")
        self._cancelled(actor, reason, at, erased_party)

    def review(self, actor: int, review: int, rating: int, content: str, at: datetime) -> None:
        self.check("review", actor)
        if self.reviewed:
            raise Conflict("order_already_reviewed")
        self._reviewed(as_actor(actor), self.creator_profile, review, rating, content, at)

    # Events --------------------------------------------------------------------------------

    @event(Accepted)
    def _accepted(self, actor: str, at: datetime) -> None:
        self.status, self.status_since, self.updated_at = IN_PROGRESS, at, at

    @event(Updated)
    def _updated(self, actor: str, changes: dict[str, Any], at: datetime) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.updated_at = at

    @event(WorkDelivered)
    def _delivered(self, actor: str, delivery: int, message: str, files: list[int], at: datetime) -> None:
        self.status, self.status_since, self.delivered_at, self.updated_at = DELIVERED, at, at, at

    @event(RevisionRequested)
    def _revision_requested(self, actor: str, message: str, at: datetime) -> None:
        self.status, self.status_since, self.updated_at = IN_PROGRESS, at, at

    @event(Completed)
    def _completed(self, actor: str, at: datetime) -> None:
        self.status, self.status_since, self.completed_at, self.updated_at = COMPLETED, at, at, at

    @event(AutoCompleted)
    def _auto_completed(self, actor: str, at: datetime) -> None:
        self.status, self.status_since, self.completed_at, self.updated_at = COMPLETED, at, at, at

    @event(Cancelled)
    def _cancelled(self, actor: str, reason: str, at: datetime, erased_party: int | None) -> None:
        self.status, self.status_since, self.cancelled_at, self.updated_at = CANCELLED, at, at, at
        self.cancellation_reason = reason

    @event(Reviewed)
    def _reviewed(
        self,
        actor: str,
        creator_profile: int,
        review: int,
        rating: int,
        content: str,
        at: datetime,
    ) -> None:
        self.reviewed, self.updated_at = True, at

    def __deepcopy__(self, memo: dict[int, Any]) -> Order:
        """A copy that shares nothing mutable with this order, ~25 times faster than `copy`'s walk
        of every attribute (a group's leader copies each kept order it decides on, GroupCommit._load).
        Every attribute is immutable (text, numbers, times, flags) but the options, a list of flat
        dicts of immutable values, and the list of pending events, which are frozen."""
        twin = object.__new__(type(self))
        memo[id(self)] = twin
        twin.__dict__.update(
            self.__dict__,
            options=[dict(option) for option in self.options],
            _pending_events=list(self._pending_events),
        )
        return twin

    def as_row(self) -> dict[str, Any]:
        """The order in the read model's shape, for answers rebuilt from events (`as_of`)."""
        return {
            "id": self.number,
            "version": self.version,
            "buyer_id": self.buyer,
            "buyer_username": self.buyer_username,
            "creator_id": self.creator,
            "creator_profile_id": self.creator_profile,
            "creator_username": self.creator_username,
            "service_id": self.service,
            "service_title": self.service_title,
            "status": self.status,
            "requirements": self.requirements,
            "price": self.price,
            "total_price": self.total_price,
            "selected_options": self.options,
            "delivery_date": self.delivery_date,
            "cancellation_reason": self.cancellation_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "delivered_at": self.delivered_at,
            "completed_at": self.completed_at,
            "cancelled_at": self.cancelled_at,
        }


EVENT_NAMES: dict[type, str] = {
    Order.Placed: "OrderPlaced",
    Order.Accepted: "OrderAccepted",
    Order.Updated: "OrderUpdated",
    Order.WorkDelivered: "WorkDelivered",
    Order.RevisionRequested: "RevisionRequested",
    Order.Completed: "OrderCompleted",
    Order.AutoCompleted: "OrderAutoCompleted",
    Order.Cancelled: "OrderCancelled",
    Order.Reviewed: "OrderReviewed",
}
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "at"}


def actor_of(e: Any) -> int:
    """The user number of whoever caused the event (SYSTEM for the scheduler)."""
    return actor_user(e.actor) or SYSTEM


def event_data(e: Any) -> dict[str, Any]:
    """What the event recorded, without the store's envelope."""
    return {name: value for name, value in vars(e).items() if name not in _ENVELOPE}
