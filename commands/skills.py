"""Skills as administrators edit them: create and update, names unique on the write side."""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError

from commands.saving import Positions, change, retrying, save
from ugc.accounts import User
from ugc.catalog import Skill
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.errors import Conflict, NotAllowed, NotFound
from ugc.events import user_actor
from ugc.ids import aggregate_id, claim_id, normalise
from ugc.platform.database import Database
from ugc.platform.store import EventStores

ADMIN = "admin"
NAME_CLAIM = "skill"


class SkillCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock) -> None:
        self.app = stores.catalog
        self.accounts = stores.accounts
        self.db = db
        self.clock = clock

    def create(self, by: int, name: str, description: str) -> tuple[int, Positions]:
        self._require_admin(by)

        actor = user_actor(by)

        def attempt() -> tuple[int, Positions]:
            claim = self._name_claim(name, holder=None)
            now = self.clock.now()
            number = self.db.next_number("skill")
            if claim is None:
                claim = Claim(kind=NAME_CLAIM, value=name, owner_number=number, at=now, actor=actor)
            else:
                claim.take(number, now, actor)
            skill = Skill(number=number, name=name, description=description, at=now, actor=actor)
            return number, save(self.app, claim, skill)

        return retrying(attempt)

    def update(self, by: int, skill_id: int, *, name: str | None, description: str | None) -> Positions:
        """Change the name and/or description; a new name must be free (409 otherwise)."""

        def load() -> Skill:
            skill = self._skill(skill_id)
            self._require_admin(by)
            return skill

        def decide(skill: Skill) -> list[Claim]:
            """Edit the skill; the claim on a new name is changed with it."""
            new_name = skill.name if name is None else name
            new_description = skill.description if description is None else description
            now, actor = self.clock.now(), user_actor(by)
            claims: list[Claim] = []
            if new_name != skill.name:
                claim = self._name_claim(new_name, holder=skill.number)
                if claim is None:
                    claim = Claim(kind=NAME_CLAIM, value=new_name, owner_number=skill.number, at=now, actor=actor)
                else:
                    claim.take(skill.number, now, actor)
                claims.append(claim)
            skill.edit(new_name, new_description, now, actor)
            return claims

        return change(self.app, load, decide, also=lambda claims: claims).positions

    def _name_claim(self, name: str, holder: int | None) -> Claim | None:
        """The existing claim on `name` if it may pass to `holder`, None if there is none; 409 if taken.

        A claim outlives a rename: it is free once its owner no longer bears the name.
        """
        try:
            claim: Claim = self.app.repository.get(claim_id(NAME_CLAIM, name))
        except AggregateNotFoundError:
            return None
        if claim.owner_number != holder and self._bears(claim.owner_number, name):
            raise Conflict("skill_name_taken")
        return claim

    def _bears(self, skill_id: int, name: str) -> bool:
        try:
            return normalise(self._skill(skill_id).name) == normalise(name)
        except NotFound:
            return False

    def _skill(self, skill_id: int) -> Skill:
        try:
            skill: Skill = self.app.repository.get(aggregate_id("skill", skill_id))
        except AggregateNotFoundError:
            raise NotFound("skill_not_found") from None
        return skill

    def _require_admin(self, user_id: int) -> None:
        try:
            user: User = self.accounts.repository.get(aggregate_id("user", user_id))
        except AggregateNotFoundError:
            raise NotAllowed() from None
        if ADMIN not in user.roles:
            raise NotAllowed()
