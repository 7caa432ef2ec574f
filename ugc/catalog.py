"""Reference data of the catalog: categories and skills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import stored_as
from ugc.ids import aggregate_id


@stored_as
class Category(Aggregate):
    @dataclass(frozen=True)
    class Created(Aggregate.Created):
        TOPIC = "ugc.Category.Created"
        class_version = 1
        number: int
        name: str
        slug: str
        at: datetime

    @staticmethod
    def create_id(number: int, name: str, slug: str, at: datetime) -> UUID:
        return aggregate_id("category", number)

    @event(Created)
    def __init__(self, number: int, name: str, slug: str, at: datetime) -> None:
        self.number = number
        self.name = name
        self.slug = slug


@stored_as
class Skill(Aggregate):
    @dataclass(frozen=True)
    class Created(Aggregate.Created):
        TOPIC = "ugc.Skill.Created"
        class_version = 1
        number: int
        name: str
        description: str
        at: datetime

    @dataclass(frozen=True)
    class Updated(Aggregate.Event):
        """The skill's name and description after an administrator's edit, and who made it.

        It repeats the skill's public id: the `skills` table is keyed by it, not by the UUID.
        """

        TOPIC = "ugc.Skill.Updated"
        class_version = 1
        number: int
        name: str
        description: str
        by: int
        at: datetime

    @staticmethod
    def create_id(number: int, name: str, description: str, at: datetime) -> UUID:
        return aggregate_id("skill", number)

    @event(Created)
    def __init__(self, number: int, name: str, description: str, at: datetime) -> None:
        self.number = number
        self.name = name
        self.description = description

    def edit(self, name: str, description: str, by: int, at: datetime) -> None:
        """Record the edit only if it changes something."""
        if (name, description) != (self.name, self.description):
            self._updated(self.number, name, description, by, at)

    @event(Updated)
    def _updated(self, number: int, name: str, description: str, by: int, at: datetime) -> None:
        self.name = name
        self.description = description
