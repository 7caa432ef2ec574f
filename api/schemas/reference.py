from __future__ import annotations

from api.schemas.out import Out


class CategoryOut(Out):
    id: int
    name: str
    slug: str


class SkillOut(Out):
    id: int
    name: str
    description: str
