"""Creator profiles: create once per user, then edit."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.saving import UNCONDITIONAL, Positions, Preconditions, change, save
from ugc.clock import Clock
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.errors import Conflict, NotFound
from ugc.events import user_actor
from ugc.ids import aggregate_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores


class CreatorCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock) -> None:
        self.app = stores.accounts
        self.db = db
        self.clock = clock

    def create_profile(
        self,
        user_id: int,
        *,
        specialization: str,
        experience: str,
        portfolio_link: str,
        social_links: dict[str, str],
        preconditions: Preconditions = UNCONDITIONAL,
    ) -> tuple[int, Positions]:
        """A user's one creator profile. A profile there already is a 409, or a 412 when the request's
        conditions fail on it (`If-None-Match: *`: create only if there is none); with none there, an
        `If-Match` (which needs one) is a 412."""
        try:
            self.app.repository.get(aggregate_id("user", user_id))
        except AggregateNotFoundError:
            raise NotFound("user_not_found") from None
        self._refuse_existing(user_id, preconditions)
        preconditions.check_missing()
        number = self.db.next_number("creator_profile")
        profile = CreatorProfile(
            number=number,
            user_number=user_id,
            specialization=specialization,
            experience=experience,
            portfolio_link=portfolio_link,
            social_links=social_links,
            at=self.clock.now(),
            actor=user_actor(user_id),
        )
        try:
            return number, save(self.app, profile)
        except IntegrityError:  # created a moment ago by another request
            self._refuse_existing(user_id, preconditions)
            raise Conflict("creator_profile_exists") from None

    def _refuse_existing(self, user_id: int, preconditions: Preconditions) -> None:
        if (existing := self._profile(user_id)) is not None:
            preconditions.check(existing)
            raise Conflict("creator_profile_exists")

    def update_profile(
        self, user_id: int, changes: dict[str, Any], *, preconditions: Preconditions = UNCONDITIONAL
    ) -> Positions:
        def load() -> CreatorProfile:
            profile = self._profile(user_id)
            if profile is None:
                raise NotFound("creator_profile_not_found")
            return profile

        return change(
            self.app,
            load,
            lambda profile: profile.update(changes, self.clock.now(), user_actor(user_id)),
            preconditions=preconditions,
        ).positions

    def _profile(self, user_id: int) -> CreatorProfile | None:
        try:
            profile: CreatorProfile = self.app.repository.get(creator_profile_id(user_id))
        except AggregateNotFoundError:
            return None
        return profile
