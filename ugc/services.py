"""Services: what a creator offers, at what price, with which paid options.

A service is public once created. Its creator edits it and may deactivate it; a deactivated
service keeps its history (past orders point at it) but can no longer be ordered. Money is
`Decimal` with two places; option ids are public ids drawn by the command before the decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import InvalidField, NotAllowed
from ugc.events import Caused, apply_changes, changed_fields, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id

# Fields an edit may change; `changes` of Service.Updated holds only these.
SERVICE_FIELDS = (
    "title",
    "description",
    "category_number",
    "base_price",
    "delivery_time",
    "options",
    "tags",
    "allows_modifications",
    "modifications_price",
)

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
MAX_OPTIONS = 20
CENT = Decimal("0.01")


def service_id(number: int) -> UUID:
    return aggregate_id("service", number)


def money(value: Decimal) -> Decimal:
    """Two decimal places, so every store and every reader sees the same figure ("1000.00")."""
    return value.quantize(CENT)


def normalise_tags(tags: Iterable[str]) -> list[str]:
    """Casefold, collapse inner whitespace, drop repeats (first wins); blank or overlong tags are refused."""
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = " ".join(tag.split()).casefold()
        if not cleaned:
            raise InvalidField("tags", "blank_tag")
        if len(cleaned) > MAX_TAG_LENGTH:
            raise InvalidField("tags", "tag_too_long")
        seen.setdefault(cleaned, None)
    if len(seen) > MAX_TAGS:
        raise InvalidField("tags", "too_many_tags")
    return list(seen)


@dataclass(frozen=True)
class OptionDraft:
    """An option as a creator sends it: `id` only when keeping an option the service already has."""

    name: str
    description: str
    price: Decimal
    id: int | None = None


def priced_options(
    drafts: Sequence[OptionDraft], known_ids: Iterable[int], new_ids: Iterable[int]
) -> list[dict[str, Any]]:
    """The options to store: kept ids must be the service's own, once each; the rest take `new_ids` in turn."""
    if len(drafts) > MAX_OPTIONS:
        raise InvalidField("options", "too_many_options")
    known, fresh, used = set(known_ids), iter(new_ids), set()
    options = []
    for index, draft in enumerate(drafts):
        if draft.id is not None and (draft.id not in known or draft.id in used):
            raise InvalidField(f"options.{index}.id", "unknown_option")
        number = draft.id if draft.id is not None else next(fresh)
        used.add(number)
        options.append(
            {"id": number, "name": draft.name, "description": draft.description, "price": money(draft.price)}
        )
    return options


@stored_as
class Service(Aggregate):
    @dataclass(frozen=True)
    class Created(Caused, Aggregate.Created):
        TOPIC = "ugc.Service.Created"
        class_version = 2
        number: int
        creator_profile_number: int
        creator_user_number: int
        creator_username: str
        category_number: int
        title: str
        description: str
        base_price: Decimal
        delivery_time: int
        options: list[dict[str, Any]]
        tags: list[str]
        allows_modifications: bool
        modifications_price: Decimal
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["creator_user_number"]))  # only its creator offers a service

    @dataclass(frozen=True)
    class Updated(Caused, Aggregate.Event):
        TOPIC = "ugc.Service.Updated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class Deactivated(Caused, Aggregate.Event):
        TOPIC = "ugc.Service.Deactivated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        at: datetime

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return service_id(number)

    @event(Created)
    def __init__(
        self,
        number: int,
        creator_profile_number: int,
        creator_user_number: int,
        creator_username: str,
        category_number: int,
        title: str,
        description: str,
        base_price: Decimal,
        delivery_time: int,
        options: list[dict[str, Any]],
        tags: list[str],
        allows_modifications: bool,
        modifications_price: Decimal,
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.creator_profile_number = creator_profile_number
        self.creator_user_number = creator_user_number
        self.creator_username = creator_username
        self.category_number = category_number
        self.title = title
        self.description = description
        self.base_price = base_price
        self.delivery_time = delivery_time
        self.options = [dict(option) for option in options]
        self.tags = list(tags)
        self.allows_modifications = allows_modifications
        self.modifications_price = modifications_price
        self.is_active = True

    @property
    def option_ids(self) -> list[int]:
        return [int(option["id"]) for option in self.options]

    def check_owner(self, user_number: int) -> None:
        """Only the creator who offers the service may change it (others may see it: 403, not 404)."""
        if user_number != self.creator_user_number:
            raise NotAllowed()

    def update(self, changes: Mapping[str, Any], at: datetime, actor: str) -> None:
        changed = changed_fields(self, changes, SERVICE_FIELDS)
        if changed:
            self._updated(changed, at, actor)

    @event(Updated)
    def _updated(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        apply_changes(self, changes)

    def deactivate(self, at: datetime, actor: str) -> None:
        """Idempotent: deactivating a deactivated service records nothing."""
        if self.is_active:
            self._deactivated(at, actor)

    @event(Deactivated)
    def _deactivated(self, at: datetime, actor: str) -> None:
        self.is_active = False
