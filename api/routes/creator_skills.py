"""Creators' skills: any signed-in user reads them; only the creator writes their own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse, read_json, validate
from api.idempotency import idempotent
from api.openapi import Operation, endpoint
from api.pagination import page_request, paginated
from api.query import query_id
from api.responses import JSON
from api.schemas.creator_skills import (
    BulkUpdateIn,
    BulkUpdateOut,
    CreatorSkillIn,
    CreatorSkillLevelIn,
    CreatorSkillOut,
    CreatorSkillPatchIn,
    render_bulk_update,
    render_creator_skill,
)
from api.services import Services, services
from commands.creator_skills import Saved, Wanted
from readmodels.creator_skills import list_creator_skills
from readmodels.pages import read_page_async


async def listing(request: Request) -> Response:
    s = services(request)
    authenticated_user(request, s.tokens)
    profile = query_id(request, "creator_profile_id")
    wanted = page_request(request)
    page = await read_page_async(s.db, list_creator_skills(wanted, profile))
    return JSON(paginated(request, wanted, page, render_creator_skill))


@idempotent
async def add(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    body = await parse(request, CreatorSkillIn)
    saved = await s.run(s.creator_skills.add, user_id, body.skill, body.level)
    return await _answer(s, saved, status_code=201)


@idempotent
async def replace(request: Request) -> Response:
    return await _change_level(request, CreatorSkillLevelIn)


@idempotent
async def update(request: Request) -> Response:
    return await _change_level(request, CreatorSkillPatchIn)


@idempotent
async def remove(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    positions = await s.run(s.creator_skills.remove, user_id, request.path_params["id"])
    await s.settle(positions)
    return Response(status_code=204)


@idempotent
async def bulk_update(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    data = await read_json(request)
    if not isinstance(data, list):
        raise errors.bad_request("not_a_list")
    body = validate(BulkUpdateIn, data)
    wanted = [Wanted(skill=entry.skill_id, level=entry.level) for entry in body.root]
    applied, positions = await s.run(s.creator_skills.bulk_update, user_id, wanted)
    await s.settle(positions)
    return JSON(render_bulk_update(applied))


async def _change_level(request: Request, model: type[CreatorSkillLevelIn | CreatorSkillPatchIn]) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    body = await parse(request, model)
    number = request.path_params["id"]
    if body.level is not None:
        saved = await s.run(s.creator_skills.change_level, user_id, number, body.level)
    else:
        # An empty PATCH changes nothing but is still only the owner's to make.
        saved = await s.run(s.creator_skills.check_owned, user_id, number)
    return await _answer(s, saved)


async def _answer(s: Services, saved: Saved, status_code: int = 200) -> Response:
    """The creator skill as the command left it, once the read model has it (see `Saved`)."""
    await s.settle(saved.positions)
    return JSON(render_creator_skill(saved.as_row()), status_code=status_code)


routes = [
    endpoint(
        "GET",
        "/api/creator-skills/",
        listing,
        Operation("Навыки креатора", response=CreatorSkillOut, paginated=True, query=("creator_profile_id",)),
    ),
    endpoint(
        "POST",
        "/api/creator-skills/",
        add,
        Operation(
            "Добавление навыка к профилю креатора",
            CreatorSkillIn,
            CreatorSkillOut,
            status=201,
            who="creator",
            conflict="unique",
        ),
    ),
    endpoint(
        "POST",
        "/api/creator-skills/bulk_update/",
        bulk_update,
        Operation("Массовое добавление/обновление навыков", BulkUpdateIn, BulkUpdateOut, who="creator"),
    ),
    endpoint(
        "PUT",
        "/api/creator-skills/{id:id}/",
        replace,
        Operation("Обновление навыка креатора", CreatorSkillLevelIn, CreatorSkillOut, who="owner"),
    ),
    endpoint(
        "PATCH",
        "/api/creator-skills/{id:id}/",
        update,
        Operation("Обновление навыка креатора", CreatorSkillPatchIn, CreatorSkillOut, who="owner"),
    ),
    endpoint(
        "DELETE",
        "/api/creator-skills/{id:id}/",
        remove,
        Operation("Удаление навыка креатора", status=204, who="owner"),
    ),
]
