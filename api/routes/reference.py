"""Categories and skills: reference data anyone may read."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.openapi import Operation, endpoint
from api.pagination import page_request, paginated
from api.query import query_words
from api.responses import JSON
from api.schemas.reference import CategoryOut, SkillOut, render_category, render_skill
from api.schemas.services import MAX_SEARCH_LENGTH
from api.services import services
from readmodels.catalog import get_skill, list_categories, list_skills
from readmodels.pages import read_page_async


async def categories(request: Request) -> Response:
    s = services(request)
    wanted = page_request(request)
    page = await read_page_async(s.db, list_categories(wanted))
    return JSON(paginated(request, wanted, page, render_category))


async def skills(request: Request) -> Response:
    s = services(request)
    wanted = page_request(request)
    search = query_words(request, "search", MAX_SEARCH_LENGTH)
    page = await read_page_async(s.db, list_skills(wanted, search))
    return JSON(paginated(request, wanted, page, render_skill))


async def skill(request: Request) -> Response:
    s = services(request)
    row = await s.run(get_skill, s.db, request.path_params["id"])
    if row is None:
        raise errors.not_found()
    return JSON(render_skill(row))


routes = [
    endpoint(
        "GET",
        "/api/v1/categories/",
        categories,
        Operation("Список категорий", response=CategoryOut, auth=False, paginated=True),
    ),
    endpoint(
        "GET",
        "/api/skills/",
        skills,
        Operation("Список навыков", response=SkillOut, auth=False, paginated=True, query=("search",)),
    ),
    endpoint("GET", "/api/skills/{id:id}/", skill, Operation("Навык", response=SkillOut, auth=False)),
]
