"""Keeps `creator_skills` from the catalog log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from ugc.creator_skills import CreatorSkill
from ugc.platform.dialect import Cursor
from ugc.platform.store import Catalog


class CreatorSkillsProjection(Projection):
    name = "creator_skills"
    applications: ClassVar[tuple[str, ...]] = (Catalog.name,)
    tables: ClassVar[tuple[str, ...]] = ("creator_skills",)

    def handlers(self) -> Mapping[type, Handler]:
        return {
            CreatorSkill.Added: self.added,
            CreatorSkill.LevelChanged: self.level_changed,
            CreatorSkill.Removed: self.removed,
            CreatorSkill.Restored: self.restored,
        }

    def added(self, cur: Cursor, e: CreatorSkill.Added) -> None:
        cur.execute(
            "INSERT INTO creator_skills (id, uuid, creator_profile_id, skill_id, level, active, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (e.number, str(e.originator_id), e.creator_profile, e.skill, e.level, True, e.at, e.at),
        )

    def level_changed(self, cur: Cursor, e: CreatorSkill.LevelChanged) -> None:
        cur.execute(
            "UPDATE creator_skills SET level = %s, updated_at = %s WHERE uuid = %s",
            (e.level, e.at, str(e.originator_id)),
        )

    def removed(self, cur: Cursor, e: CreatorSkill.Removed) -> None:
        cur.execute(
            "UPDATE creator_skills SET active = %s, updated_at = %s WHERE uuid = %s",
            (False, e.at, str(e.originator_id)),
        )

    def restored(self, cur: Cursor, e: CreatorSkill.Restored) -> None:
        cur.execute(
            "UPDATE creator_skills SET active = %s, level = %s, updated_at = %s WHERE uuid = %s",
            (True, e.level, e.at, str(e.originator_id)),
        )
