from __future__ import annotations

from pydantic import BaseModel


class CategoryOut(BaseModel):
    id: int
    name: str
    slug: str


class SkillOut(BaseModel):
    id: int
    name: str
    description: str
