"""A creator's skills: add, change the level, remove, and the all-or-nothing bulk update; an erased
creator's are withdrawn."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from commands.creator_access import Listed, check_owner, require_live_creator, withdraw_listed, withdrawn_if_erased
from commands.saving import Positions, change, retrying, save
from ugc.catalog import Skill
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.creator_skills import CLAIM_KIND, CreatorSkill, check_level, creator_skill_id, pair_claim_value
from ugc.errors import InvalidField, NotFound
from ugc.events import user_actor
from ugc.ids import aggregate_id, claim_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores


@dataclass(frozen=True)
class Wanted:
    """One entry of a bulk update: this skill at this level."""

    skill: int
    level: int


@dataclass(frozen=True)
class Saved:
    """A creator skill as a command left it, with its skill: what the read model shows once it reaches
    `positions`, so the answer is rendered from it rather than read back, which found nothing when a
    removal appended just after was projected first (404 for a write that was saved)."""

    creator_skill: CreatorSkill
    skill: Skill
    positions: Positions

    def as_row(self) -> dict[str, Any]:
        """In the read model's shape (`readmodels.creator_skills`)."""
        return {
            "id": self.creator_skill.number,
            "creator_profile_id": self.creator_skill.creator_profile,
            "level": self.creator_skill.level,
            "skill_id": self.skill.number,
            "skill_name": self.skill.name,
            "skill_description": self.skill.description,
        }


@dataclass(frozen=True)
class Applied:
    """What a bulk update did with one entry; `created` is false when the creator already had the skill."""

    id: int
    skill_id: int
    skill_name: str
    level: int
    created: bool


class CreatorSkillCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock) -> None:
        self.app = stores.catalog
        self.accounts = stores.accounts
        self.db = db
        self.clock = clock

    def add(self, user_id: int, skill: int, level: int) -> Saved:
        """Add a skill the creator does not have yet (409 if they do)."""
        check_level(level)
        found = self._skill(skill, field="skill")
        profile = require_live_creator(self.accounts, user_id)

        def attempt() -> Saved:
            existing = self._of_pair(profile, skill)
            if existing is not None:
                existing.restore(level, self.clock.now(), user_actor(user_id))
                return Saved(existing, found, save(self.app, existing))
            claim, created = self._new(profile, skill, level, user_actor(user_id))
            return Saved(created, found, save(self.app, claim, created))

        saved = retrying(attempt)
        withdrawn_if_erased(self.accounts, self.app, user_id, lambda: self.remove(user_id, saved.creator_skill.number))
        return saved

    def change_level(self, user_id: int, number: int, level: int) -> Saved:
        check_level(level)

        def decide(creator_skill: CreatorSkill) -> CreatorSkill:
            creator_skill.change_level(level, self.clock.now(), user_actor(user_id))
            return creator_skill

        changed = change(self.app, lambda: self._owned(user_id, number), decide)
        return self._saved(changed.result, changed.positions)

    def check_owned(self, user_id: int, number: int) -> Saved:
        """404 or 403 exactly as a write would answer, for a request that changes nothing; the creator
        skill as it stands."""
        return self._saved(self._owned(user_id, number), {})

    def remove(self, user_id: int, number: int) -> Positions:
        return self._change(user_id, number, lambda skill: skill.remove(self.clock.now(), user_actor(user_id)))

    def bulk_update(self, user_id: int, wanted: Sequence[Wanted]) -> tuple[list[Applied], Positions]:
        """Set every listed skill to its level, adding the ones the creator lacks.

        All or nothing: every entry is checked before anything is decided, and all the events are
        appended in one save (one transaction); a bad entry fails the whole list naming its index.
        """
        skills: dict[int, Skill] = {}
        for index, entry in enumerate(wanted):
            check_level(entry.level, f"{index}.level")
            if entry.skill in skills:
                raise InvalidField(f"{index}.skill_id", "duplicate_skill")
            skills[entry.skill] = self._skill(entry.skill, field=f"{index}.skill_id")
        profile = require_live_creator(self.accounts, user_id)

        def attempt() -> tuple[list[Applied], Positions]:
            now, actor = self.clock.now(), user_actor(user_id)
            pending: list[Aggregate] = []
            applied: list[Applied] = []
            for entry in wanted:
                existing = self._of_pair(profile, entry.skill)
                if existing is None:
                    claim, created = self._new(profile, entry.skill, entry.level, actor)
                    pending += [claim, created]
                    number, fresh = created.number, True
                else:
                    # A removed skill listed again comes back under its old id: new to the client.
                    number, fresh = existing.number, existing.removed
                    if existing.removed:
                        existing.restore(entry.level, now, actor)
                    else:
                        existing.change_level(entry.level, now, actor)
                    pending.append(existing)
                applied.append(Applied(number, entry.skill, skills[entry.skill].name, entry.level, created=fresh))
            return applied, save(self.app, *pending)

        applied, positions = retrying(attempt)
        numbers = [entry.id for entry in applied]
        withdrawn_if_erased(self.accounts, self.app, user_id, lambda: self._remove_present(user_id, numbers))
        return applied, positions

    def withdraw_all(self, creator_user_id: int, actor: str, listed: Listed) -> list[int]:
        """Remove every skill of a creator whose account was erased, with `actor` (the operator)
        recorded; the ids removed (`withdraw_listed`)."""

        def remove(number: int) -> None:
            change(self.app, functools.partial(self._get, number), lambda skill: skill.remove(self.clock.now(), actor))

        return withdraw_listed(self.accounts, self.app, creator_user_id, listed, remove)

    def _remove_present(self, user_id: int, numbers: Sequence[int]) -> None:
        """Remove each of `numbers` that is not removed already."""
        for number in numbers:
            try:
                self.remove(user_id, number)
            except NotFound:
                continue

    def _change(self, user_id: int, number: int, decide: Callable[[CreatorSkill], None]) -> Positions:
        return change(self.app, lambda: self._owned(user_id, number), decide).positions

    def _saved(self, creator_skill: CreatorSkill, positions: Positions) -> Saved:
        return Saved(creator_skill, self._skill(creator_skill.skill, field="skill"), positions)

    def _new(self, profile: int, skill: int, level: int, actor: str) -> tuple[Claim, CreatorSkill]:
        """A new creator skill and the claim that makes its (profile, skill) pair unique."""
        now = self.clock.now()
        number = self.db.next_number("creator_skill")
        pair = pair_claim_value(profile, skill)
        claim = Claim(kind=CLAIM_KIND, value=pair, owner_number=number, at=now, actor=actor)
        return claim, CreatorSkill.add(number, profile, skill, level, now, actor)

    def _of_pair(self, profile: int, skill: int) -> CreatorSkill | None:
        try:
            claim: Claim = self.app.repository.get(claim_id(CLAIM_KIND, pair_claim_value(profile, skill)))
        except AggregateNotFoundError:
            return None
        return self._get(claim.owner_number)

    def _owned(self, user_id: int, number: int) -> CreatorSkill:
        """The creator skill, if it exists (404) and the caller owns it (403: the list is public)."""
        creator_skill = self._get(number)
        if creator_skill.removed:
            raise NotFound("creator_skill_not_found")
        check_owner(self.accounts, user_id, creator_skill.creator_profile)
        return creator_skill

    def _get(self, number: int) -> CreatorSkill:
        try:
            creator_skill: CreatorSkill = self.app.repository.get(creator_skill_id(number))
        except AggregateNotFoundError:
            raise NotFound("creator_skill_not_found") from None
        return creator_skill

    def _skill(self, skill: int, *, field: str) -> Skill:
        try:
            found: Skill = self.app.repository.get(aggregate_id("skill", skill))
        except AggregateNotFoundError:
            raise InvalidField(field, "unknown_skill") from None
        return found
