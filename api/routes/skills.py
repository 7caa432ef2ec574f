"""Skills as administrators write them (reading them is `api/routes/reference.py`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse
from api.idempotency import idempotent
from api.openapi import Operation, endpoint
from api.responses import JSON
from api.schemas.reference import SkillOut, render_skill
from api.schemas.skills import SkillIn, SkillPatchIn
from api.services import Services, services
from readmodels.catalog import get_skill


@idempotent
async def create_skill(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    body = await parse(request, SkillIn)
    number, positions = await s.run(s.skills.create, user_id, body.name, body.description)
    await s.settle(positions)
    return JSON(await _skill(s, number), status_code=201)


@idempotent
async def replace_skill(request: Request) -> Response:
    return await _update(request, SkillIn)


@idempotent
async def update_skill(request: Request) -> Response:
    return await _update(request, SkillPatchIn)


async def _update(request: Request, model: type[SkillIn | SkillPatchIn]) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    body = await parse(request, model)
    skill_id = request.path_params["id"]
    positions = await s.run(s.skills.update, user_id, skill_id, name=body.name, description=body.description)
    await s.settle(positions)
    return JSON(await _skill(s, skill_id))


async def _skill(s: Services, skill_id: int) -> dict[str, Any]:
    row = await s.run(get_skill, s.db, skill_id)
    if row is None:
        raise errors.not_found("skill_not_found")
    return render_skill(row)


routes = [
    endpoint(
        "POST",
        "/api/skills/",
        create_skill,
        Operation("Создание навыка (администратор)", SkillIn, SkillOut, status=201, who="admin", conflict="unique"),
    ),
    endpoint(
        "PUT",
        "/api/skills/{id:id}/",
        replace_skill,
        Operation("Изменение навыка (администратор)", SkillIn, SkillOut, who="admin", conflict="unique"),
    ),
    endpoint(
        "PATCH",
        "/api/skills/{id:id}/",
        update_skill,
        Operation("Частичное изменение навыка (администратор)", SkillPatchIn, SkillOut, who="admin", conflict="unique"),
    ),
]
