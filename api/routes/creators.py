"""Public creator profiles."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import standing_for
from api.openapi import Operation, endpoint
from api.query import query_flag
from api.schemas.users import CreatorDetailOut, render_detail, render_profile
from api.services import services
from api.versions import versioned
from readmodels.creator_skills import skills_of_creator
from readmodels.creators import get_creator_profile
from readmodels.portfolio import portfolio_of_creator
from ugc.creators import CreatorProfile
from ugc.personal import PERSONAL
from ugc.platform.dialect import Row

# What a creator profile's personal fields read as once its person is erased.
ERASED_PROFILE = PERSONAL[CreatorProfile.Created.TOPIC].erased


async def creator(request: Request) -> Response:
    s = services(request)
    row = await s.run(get_creator_profile, s.db, request.path_params["id"])
    if row is None:
        raise errors.not_found()
    # The projection of `User.Erased` blanks the row, and the erasure then withdraws the skills and
    # portfolio; one cut short after the keys, before that event, shows in the creator's standing
    # alone (`commands/erased.py`): a dictionary lookup while a process keeps it, else one load (every
    # 30 s at most per creator; a row blanked already, an erased creator's, is never looked up).
    erased = not _blank(row) and await standing_for(s, row["user_id"]) is None
    if erased:
        row = {**row, **ERASED_PROFILE}
    if not query_flag(request, "detail"):
        return versioned(render_profile(row), row["version"])
    skills = [] if erased else await s.run(skills_of_creator, s.db, row["id"])
    portfolio = [] if erased else await s.run(portfolio_of_creator, s.db, row["id"])
    return versioned(render_detail(s.settings.public_url, row, skills, portfolio), row["version"])


def _blank(row: Row) -> bool:
    """Whether the row's personal fields read as erased already."""
    return all(row[name] == value for name, value in ERASED_PROFILE.items())


routes = [
    endpoint(
        "GET",
        "/api/v1/creators/{id:id}/",
        creator,
        Operation("Профиль креатора", response=CreatorDetailOut, auth=False, query=("detail",), etag=True),
    ),
]
