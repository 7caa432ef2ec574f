"""Categories and skills: reference data anyone may read."""

from __future__ import annotations

from typing import Any

from api.schemas.out import Out, Row


class CategoryOut(Out):
    id: int
    name: str
    slug: str


class SkillOut(Out):
    id: int
    name: str
    description: str


def render_category(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "slug": row["slug"]}


def render_skill(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "description": row["description"]}
