"""Public creator profiles."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.openapi import Operation, endpoint
from api.responses import JSON
from api.routes.creator_skills import render_creator_skill
from api.routes.portfolio import render_item
from api.schemas.users import CreatorDetailOut
from api.services import services
from api.versions import etag
from readmodels.creator_skills import skills_of_creator
from readmodels.creators import get_creator_profile
from readmodels.portfolio import portfolio_of_creator
from ugc.platform.dialect import Row


def render_profile(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user": {"id": row["user_id"], "username": row["username"]},
        "specialization": row["specialization"],
        "experience": row["experience"],
        "portfolio_link": row["portfolio_link"],
        "social_links": row["social_links"],
        "rating": row["rating"] if row["rating"] is not None else Decimal(0),
        "completed_orders": row["completed_orders"] or 0,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def creator(request: Request) -> Response:
    s = services(request)
    row = await s.run(get_creator_profile, s.db, request.path_params["id"])
    if row is None:
        raise errors.not_found()
    profile = render_profile(row)
    if request.query_params.get("detail", "").lower() in ("true", "1"):
        skills = await s.run(skills_of_creator, s.db, row["id"])
        portfolio = await s.run(portfolio_of_creator, s.db, row["id"])
        profile |= {
            "skills": [render_creator_skill(skill) for skill in skills],
            "portfolio": [render_item(s, item) for item in portfolio],
        }
    return JSON(profile, headers=etag(row["version"]))


routes = [
    endpoint(
        "GET",
        "/api/v1/creators/{id:id}/",
        creator,
        Operation("Профиль креатора", response=CreatorDetailOut, auth=False, query=("detail",)),
    ),
]
