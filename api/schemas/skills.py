from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints, field_validator

SkillName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SkillDescription = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class SkillIn(BaseModel):
    """POST and PUT: the whole skill."""

    name: SkillName
    description: SkillDescription = ""


class SkillPatchIn(BaseModel):
    name: SkillName | None = None
    description: SkillDescription | None = None

    @field_validator("*")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("Поле не может быть пустым (null).")
        return value
