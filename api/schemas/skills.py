from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints

from api.schemas.patch import PatchIn

SkillName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SkillDescription = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class SkillIn(BaseModel):
    """POST and PUT: the whole skill."""

    name: SkillName
    description: SkillDescription = ""


class SkillPatchIn(PatchIn):
    name: SkillName | None = None
    description: SkillDescription | None = None
