"""Public creator profiles."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.openapi import Operation, endpoint
from api.query import query_flag
from api.schemas.users import CreatorDetailOut, render_detail, render_profile
from api.services import services
from api.versions import versioned
from readmodels.creator_skills import skills_of_creator
from readmodels.creators import get_creator_profile
from readmodels.portfolio import portfolio_of_creator


async def creator(request: Request) -> Response:
    s = services(request)
    row = await s.run(get_creator_profile, s.db, request.path_params["id"])
    if row is None:
        raise errors.not_found()
    if not query_flag(request, "detail"):
        return versioned(render_profile(row), row["version"])
    skills = await s.run(skills_of_creator, s.db, row["id"])
    portfolio = await s.run(portfolio_of_creator, s.db, row["id"])
    return versioned(render_detail(s.settings.public_url, row, skills, portfolio), row["version"])


routes = [
    endpoint(
        "GET",
        "/api/v1/creators/{id:id}/",
        creator,
        Operation("Профиль креатора", response=CreatorDetailOut, auth=False, query=("detail",), etag=True),
    ),
]
