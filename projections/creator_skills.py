"""Keeps `creator_skills` and their totals (`creator_skill_counts`) from the catalog log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from readmodels.creator_skills import EVERY_CREATOR
from ugc.creator_skills import CreatorSkill
from ugc.platform.dialect import Cursor
from ugc.platform.store import Catalog


class CreatorSkillsProjection(Projection):
    name = "creator_skills"
    applications: ClassVar[tuple[str, ...]] = (Catalog.name,)
    tables: ClassVar[tuple[str, ...]] = ("creator_skills", "creator_skill_counts")

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
        cur.execute(
            "INSERT INTO creator_skill_counts (creator_profile_id, n) VALUES (%s, 1), (%s, 1) "
            "ON CONFLICT (creator_profile_id) DO UPDATE SET n = creator_skill_counts.n + 1",
            (e.creator_profile, EVERY_CREATOR),
        )

    def level_changed(self, cur: Cursor, e: CreatorSkill.LevelChanged) -> None:
        cur.execute(
            "UPDATE creator_skills SET level = %s, updated_at = %s WHERE uuid = %s",
            (e.level, e.at, str(e.originator_id)),
        )

    def removed(self, cur: Cursor, e: CreatorSkill.Removed) -> None:
        _count(cur, str(e.originator_id), -1)
        cur.execute(
            "UPDATE creator_skills SET active = %s, updated_at = %s WHERE uuid = %s",
            (False, e.at, str(e.originator_id)),
        )

    def restored(self, cur: Cursor, e: CreatorSkill.Restored) -> None:
        _count(cur, str(e.originator_id), 1)
        cur.execute(
            "UPDATE creator_skills SET active = %s, level = %s, updated_at = %s WHERE uuid = %s",
            (True, e.level, e.at, str(e.originator_id)),
        )


def _count(cur: Cursor, uuid: str, change: int) -> None:
    """Move the skill's creator's total and every creator's by `change` (1: restored, -1: removed),
    unless its row is in that state already."""
    row = cur.execute(
        "SELECT creator_profile_id FROM creator_skills WHERE uuid = %s AND active = %s", (uuid, change < 0)
    ).fetchone()
    if row is not None:
        cur.execute(
            "UPDATE creator_skill_counts SET n = n + %s WHERE creator_profile_id IN (%s, %s)",
            (change, row["creator_profile_id"], EVERY_CREATOR),
        )
