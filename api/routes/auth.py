"""Registration, e-mail verification and JWT issue/refresh."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors, throttle
from api.auth import authenticated_user
from api.body import parse
from api.openapi import Operation, endpoint
from api.responses import JSON
from api.schemas.auth import (
    AccessOut,
    MessageOut,
    RefreshIn,
    RegisterIn,
    RegisterOut,
    TokenIn,
    TokenOut,
    VerifyEmailIn,
)
from api.schemas.orders import EmptyIn
from api.services import services
from api.tokens import TokenError
from commands.accounts import Register
from ugc.errors import InvalidToken


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def register(request: Request) -> Response:
    body = await parse(request, RegisterIn)
    s = services(request)
    command = Register(
        username=body.username,
        email=str(body.email),
        password=body.password,
        first_name=body.first_name,
        last_name=body.last_name,
    )
    registered = await s.run(s.accounts.register, command)
    await s.settle(registered.positions)
    out = RegisterOut(
        id=registered.user_id,
        username=command.username,
        email=command.email,
        first_name=command.first_name,
        last_name=command.last_name,
    )
    return JSON(out.model_dump(), status_code=201)


async def verify_email(request: Request) -> Response:
    body = await parse(request, VerifyEmailIn)
    s = services(request)
    who = throttle.subjects(_address(request))
    retry_after = await s.run(s.throttle.retry_after, who)
    if retry_after is not None:
        raise errors.throttled(retry_after)
    try:
        positions = await s.run(s.accounts.verify_email, body.token, s.settings.secret_key)
    except InvalidToken:
        await s.run(s.throttle.record_failure, who)
        raise
    await s.settle(positions)
    return JSON({"message": "Email успешно подтвержден"})


async def resend_verification(request: Request) -> Response:
    """Mail a new verification link to the signed-in user; 409 once the e-mail is verified."""
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    await parse(request, EmptyIn)
    who = throttle.resends(user_id)
    retry_after = await s.run(s.throttle.retry_after, who)
    if retry_after is not None:
        raise errors.throttled(retry_after)
    positions = await s.run(s.accounts.resend_verification, user_id)
    await s.run(s.throttle.record_failure, who)
    await s.settle(positions)
    return JSON({"message": "Письмо со ссылкой подтверждения отправлено."})


async def token(request: Request) -> Response:
    body = await parse(request, TokenIn)
    s = services(request)
    who = throttle.subjects(_address(request), body.username)
    retry_after = await s.run(s.throttle.retry_after, who)
    if retry_after is not None:
        raise errors.throttled(retry_after)
    user_id = await s.run(s.accounts.authenticate, body.username, body.password)
    if user_id is None:
        await s.run(s.throttle.record_failure, who)
        raise errors.unauthorized("wrong_credentials")
    return JSON({"access": s.tokens.issue(user_id, "access"), "refresh": s.tokens.issue(user_id, "refresh")})


async def refresh(request: Request) -> Response:
    body = await parse(request, RefreshIn)
    s = services(request)
    try:
        user_id = s.tokens.user_id(body.refresh, "refresh")
    except TokenError:
        raise errors.unauthorized("invalid_token") from None
    if not await s.run(s.accounts.user_exists, user_id):
        raise errors.unauthorized("invalid_token")
    return JSON({"access": s.tokens.issue(user_id, "access")})


routes = [
    endpoint(
        "POST",
        "/api/auth/register/",
        register,
        Operation("Регистрация пользователя", RegisterIn, RegisterOut, status=201, auth=False),
    ),
    endpoint(
        "POST",
        "/api/auth/verify-email/",
        verify_email,
        Operation("Верификация email", VerifyEmailIn, MessageOut, auth=False),
    ),
    endpoint(
        "POST",
        "/api/auth/resend-verification/",
        resend_verification,
        Operation("Повторная отправка письма подтверждения", response=MessageOut, open_to_unverified=True),
    ),
    endpoint("POST", "/api/auth/token/", token, Operation("Получение токена доступа", TokenIn, TokenOut, auth=False)),
    endpoint(
        "POST", "/api/auth/token/refresh/", refresh, Operation("Обновление токена", RefreshIn, AccessOut, auth=False)
    ),
]
