"""Public creator profiles."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.openapi import Operation, endpoint
from api.responses import JSON
from api.schemas.users import CreatorDetailOut
from api.services import services
from readmodels.creators import get_creator_profile
from ugc.database import Row


def render_profile(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user": {"id": row["user_id"], "username": row["username"]},
        "specialization": row["specialization"],
        "experience": row["experience"],
        "portfolio_link": row["portfolio_link"],
        "social_links": row["social_links"],
        # Ratings and completed orders come from the orders' projections, which do not exist yet.
        "rating": Decimal(0),
        "completed_orders": 0,
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
        # Skills and portfolio are the catalog's read models, still to come: empty until then.
        profile |= {"skills": [], "portfolio": []}
    return JSON(profile)


routes = [
    endpoint(
        "GET",
        "/api/v1/creators/{id:int}/",
        creator,
        Operation("Профиль креатора", response=CreatorDetailOut, auth=False, query=("detail",)),
    ),
]
