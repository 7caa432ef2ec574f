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
        number: int
        name: str
        description: str
        at: datetime

    @staticmethod
    def create_id(number: int, name: str, description: str, at: datetime) -> UUID:
        return aggregate_id("skill", number)

    @event(Created)
    def __init__(self, number: int, name: str, description: str, at: datetime) -> None:
        self.number = number
        self.name = name
        self.description = description
