"""Reference data of the catalog: categories and skills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import Caused, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id


@stored_as
class Category(Aggregate):
    @dataclass(frozen=True)
    class Created(Caused, Aggregate.Created):
        TOPIC = "ugc.Category.Created"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        name: str
        slug: str
        at: datetime

    @staticmethod
    def create_id(number: int, name: str, slug: str, at: datetime) -> UUID:
        return aggregate_id("category", number)

    @event(Created)
    def __init__(self, number: int, name: str, slug: str, at: datetime, actor: str) -> None:
        self.number = number
        self.name = name
        self.slug = slug


@stored_as
class Skill(Aggregate):
    @dataclass(frozen=True)
    class Created(Caused, Aggregate.Created):
        TOPIC = "ugc.Skill.Created"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        name: str
        description: str
        at: datetime

    @dataclass(frozen=True)
    class Updated(Caused, Aggregate.Event):
        """The skill's name and description after an administrator's edit (the actor).

        It repeats the skill's public id: the `skills` table is keyed by it, not by the UUID.
        Version 1 named the administrator in `by`, a user number; version 2 has the actor instead.
        """

        TOPIC = "ugc.Skill.Updated"
        class_version = 2
        number: int
        name: str
        description: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state.pop("by")))

    @staticmethod
    def create_id(number: int, name: str, description: str, at: datetime) -> UUID:
        return aggregate_id("skill", number)

    @event(Created)
    def __init__(self, number: int, name: str, description: str, at: datetime, actor: str) -> None:
        self.number = number
        self.name = name
        self.description = description

    def edit(self, name: str, description: str, at: datetime, actor: str) -> None:
        """Record the edit only if it changes something."""
        if (name, description) != (self.name, self.description):
            self._updated(self.number, name, description, at, actor)

    @event(Updated)
    def _updated(self, number: int, name: str, description: str, at: datetime, actor: str) -> None:
        self.name = name
        self.description = description
