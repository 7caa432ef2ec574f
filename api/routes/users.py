"""The signed-in user's account and creator profile."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse
from api.idempotency import idempotent
from api.openapi import Operation, endpoint
from api.own_rows import own_user
from api.schemas.users import (
    CreatorProfileIn,
    CreatorProfileOut,
    CreatorProfilePatchIn,
    UserOut,
    UserPatchIn,
    UserUpdatedOut,
    render_profile,
    render_user,
)
from api.services import Services, services
from api.versions import preconditions, versioned
from readmodels.creators import get_creator_profile_of_user
from readmodels.users import get_user
from ugc.platform.dialect import Row


async def _me(request: Request) -> tuple[Services, int, Row]:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    return s, user_id, await own_user(s, user_id)


async def me(request: Request) -> Response:
    _, _, row = await _me(request)
    return versioned(render_user(row), row["version"])


@idempotent
async def update_me(request: Request) -> Response:
    s, user_id, _ = await _me(request)
    body = await parse(request, UserPatchIn)
    changes = body.model_dump(exclude_unset=True)
    positions = await s.run(s.accounts.update_profile, user_id, changes, preconditions=preconditions(request))
    await s.settle(positions)
    row = await s.run(get_user, s.db, user_id)
    assert row is not None
    return versioned(render_user(row, with_profile_flags=False), row["version"])


@idempotent
async def create_creator_profile(request: Request) -> Response:
    s, user_id, _ = await _me(request)
    body = await parse(request, CreatorProfileIn)
    _, positions = await s.run(
        s.creators.create_profile,
        user_id,
        specialization=body.specialization,
        experience=body.experience,
        portfolio_link=body.portfolio_link,
        social_links=body.social_links,
        preconditions=preconditions(request),
    )
    await s.settle(positions)
    return await _profile_of(s, user_id, status_code=201)


@idempotent
async def update_creator_profile(request: Request) -> Response:
    s, user_id, _ = await _me(request)
    body = await parse(request, CreatorProfilePatchIn)
    positions = await s.run(
        s.creators.update_profile,
        user_id,
        body.model_dump(exclude_unset=True),
        preconditions=preconditions(request),
    )
    await s.settle(positions)
    return await _profile_of(s, user_id)


async def _profile_of(s: Services, user_id: int, status_code: int = 200) -> Response:
    row = await s.run(get_creator_profile_of_user, s.db, user_id)
    if row is None:
        raise errors.not_found("creator_profile_not_found")
    return versioned(render_profile(row), row["version"], status_code)


routes = [
    endpoint("GET", "/api/v1/users/me/", me, Operation("Данные текущего пользователя", response=UserOut, etag=True)),
    endpoint(
        "PATCH",
        "/api/v1/users/me/",
        update_me,
        Operation("Обновление профиля пользователя", UserPatchIn, UserUpdatedOut, preconditions=True, etag=True),
    ),
    endpoint(
        "POST",
        "/api/v1/users/me/creator-profile/",
        create_creator_profile,
        Operation(
            "Создание профиля креатора",
            CreatorProfileIn,
            CreatorProfileOut,
            status=201,
            conflict="unique",
            preconditions=True,
            etag=True,
        ),
    ),
    endpoint(
        "PATCH",
        "/api/v1/users/me/creator-profile/",
        update_creator_profile,
        Operation(
            "Обновление профиля креатора",
            CreatorProfilePatchIn,
            CreatorProfileOut,
            missing=True,
            preconditions=True,
            etag=True,
        ),
    ),
]
