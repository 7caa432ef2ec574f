"""A creator's skills: one row per (creator profile, skill), with a level from 1 to 5.

The pair is made unique by a claim (kind `creator-skill`, value `"{profile}:{skill}"`) that maps
it to the creator skill's number. Removing a skill only marks its aggregate removed, so adding
the same skill again later restores that aggregate under its old id instead of colliding with
the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import Conflict, InvalidField, NotFound
from ugc.events import Caused, stored_as, upcast_cause
from ugc.ids import aggregate_id

MIN_LEVEL, MAX_LEVEL = 1, 5
CLAIM_KIND = "creator-skill"


def creator_skill_id(number: int) -> UUID:
    return aggregate_id("creator_skill", number)


def pair_claim_value(creator_profile: int, skill: int) -> str:
    """The value a creator skill claims: one creator, one skill."""
    return f"{creator_profile}:{skill}"


def level_is_valid(level: int) -> bool:
    return MIN_LEVEL <= level <= MAX_LEVEL


def check_level(level: int, field: str = "level") -> None:
    if not level_is_valid(level):
        raise InvalidField(field, "invalid_level")


@stored_as
class CreatorSkill(Aggregate):
    @dataclass(frozen=True)
    class Added(Caused, Aggregate.Created):
        TOPIC = "ugc.CreatorSkill.Added"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        creator_profile: int
        skill: int
        level: int
        at: datetime

    @dataclass(frozen=True)
    class LevelChanged(Caused, Aggregate.Event):
        TOPIC = "ugc.CreatorSkill.LevelChanged"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        level: int
        at: datetime

    @dataclass(frozen=True)
    class Removed(Caused, Aggregate.Event):
        TOPIC = "ugc.CreatorSkill.Removed"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        at: datetime

    @dataclass(frozen=True)
    class Restored(Caused, Aggregate.Event):
        TOPIC = "ugc.CreatorSkill.Restored"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        level: int
        at: datetime

    @staticmethod
    def create_id(number: int, creator_profile: int, skill: int, level: int, at: datetime) -> UUID:
        return creator_skill_id(number)

    @classmethod
    def add(cls, number: int, creator_profile: int, skill: int, level: int, at: datetime, actor: str) -> CreatorSkill:
        check_level(level)
        return cls(number=number, creator_profile=creator_profile, skill=skill, level=level, at=at, actor=actor)

    @event(Added)
    def __init__(self, number: int, creator_profile: int, skill: int, level: int, at: datetime, actor: str) -> None:
        self.number = number
        self.creator_profile = creator_profile
        self.skill = skill
        self.level = level
        self.removed = False

    def change_level(self, level: int, at: datetime, actor: str) -> None:
        self._check_present()
        check_level(level)
        if level != self.level:
            self._level_changed(level, at, actor)

    @event(LevelChanged)
    def _level_changed(self, level: int, at: datetime, actor: str) -> None:
        self.level = level

    def remove(self, at: datetime, actor: str) -> None:
        self._check_present()
        self._removed(at, actor)

    @event(Removed)
    def _removed(self, at: datetime, actor: str) -> None:
        self.removed = True

    def restore(self, level: int, at: datetime, actor: str) -> None:
        """Add the skill again after its removal, under the same id."""
        if not self.removed:
            raise Conflict("creator_skill_exists")
        check_level(level)
        self._restored(level, at, actor)

    @event(Restored)
    def _restored(self, level: int, at: datetime, actor: str) -> None:
        self.level = level
        self.removed = False

    def _check_present(self) -> None:
        if self.removed:
            raise NotFound("creator_skill_not_found")
