from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, RootModel

from api.ids import PublicId
from api.schemas.out import Out, Row
from api.schemas.patch import PatchIn
from api.schemas.reference import SkillOut
from commands.creator_skills import Applied
from ugc.creator_skills import MAX_LEVEL, MIN_LEVEL, level_is_valid

# Bulk lists name each skill once, and there are only so many skills.
MAX_BULK_ENTRIES = 200


def _level(value: int) -> int:
    if not level_is_valid(value):
        raise ValueError(f"Уровень должен быть целым числом от {MIN_LEVEL} до {MAX_LEVEL}.")
    return value


# Strict: `true` or "4" is not a level. The bounds are checked by `_level`, for a Russian message.
Level = Annotated[
    int, Field(strict=True, json_schema_extra={"minimum": MIN_LEVEL, "maximum": MAX_LEVEL}), AfterValidator(_level)
]


class CreatorSkillIn(BaseModel):
    skill: PublicId
    level: Level


class CreatorSkillLevelIn(BaseModel):
    """PUT: the level is the only thing a creator skill has to change."""

    level: Level


class CreatorSkillPatchIn(PatchIn):
    level: Level | None = None


class CreatorSkillOut(Out):
    id: int
    skill: SkillOut
    level: int
    creator_profile: int


def render_creator_skill(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "skill": {"id": row["skill_id"], "name": row["skill_name"], "description": row["skill_description"]},
        "level": row["level"],
        "creator_profile": row["creator_profile_id"],
    }


class BulkEntryIn(BaseModel):
    skill_id: PublicId
    level: Level


class BulkUpdateIn(RootModel[Annotated[list[BulkEntryIn], Field(max_length=MAX_BULK_ENTRIES)]]):
    pass


class BulkResultOut(Out):
    id: int
    skill_id: int
    skill_name: str
    level: int
    created: bool


class BulkUpdateOut(RootModel[list[BulkResultOut]]):
    """One result per entry sent, in the order sent."""


def render_bulk_update(applied: Iterable[Applied]) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "skill_id": a.skill_id, "skill_name": a.skill_name, "level": a.level, "created": a.created}
        for a in applied
    ]
