"""Creator profiles: one per user, so the profile's id is derived from the user's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import Caused, apply_changes, changed_fields, stored_as, upcast_cause
from ugc.ids import aggregate_id

CREATOR_PROFILE_FIELDS = ("specialization", "experience", "portfolio_link", "social_links")


def creator_profile_id(user_number: int) -> UUID:
    return aggregate_id("creator-profile-of-user", user_number)


@stored_as
class CreatorProfile(Aggregate):
    @dataclass(frozen=True)
    class Created(Caused, Aggregate.Created):
        TOPIC = "ugc.CreatorProfile.Created"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        user_number: int
        specialization: str
        experience: str
        portfolio_link: str
        social_links: dict[str, str]
        at: datetime

    @dataclass(frozen=True)
    class Updated(Caused, Aggregate.Event):
        TOPIC = "ugc.CreatorProfile.Updated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class Erased(Caused, Aggregate.Event):
        """The profile's person was erased: its fields read as blank from here on, and its version
        moves with them, so an ETag taken before the erasure no longer matches."""

        TOPIC = "ugc.CreatorProfile.Erased"
        class_version = 1
        at: datetime

    @staticmethod
    def create_id(user_number: int, **_: Any) -> UUID:
        return creator_profile_id(user_number)

    @event(Created)
    def __init__(
        self,
        number: int,
        user_number: int,
        specialization: str,
        experience: str,
        portfolio_link: str,
        social_links: dict[str, str],
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.user_number = user_number
        self.specialization = specialization
        self.experience = experience
        self.portfolio_link = portfolio_link
        self.social_links = dict(social_links)
        self.erased = False

    def update(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        changed = changed_fields(self, changes, CREATOR_PROFILE_FIELDS)
        if changed:
            self._updated(changed, at, actor)

    @event(Updated)
    def _updated(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        apply_changes(self, changes)

    def erase(self, at: datetime, actor: str) -> None:
        if not self.erased:
            self._erased(at, actor)

    @event(Erased)
    def _erased(self, at: datetime, actor: str) -> None:
        self.erased = True
        self.specialization = self.experience = self.portfolio_link = ""
        self.social_links = {}
