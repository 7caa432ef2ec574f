"""Registration, e-mail verification, sign-in, token refresh and sign-out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors, throttle
from api.auth import authenticated_user
from api.body import parse
from api.openapi import Operation, endpoint
from api.responses import JSON
from api.schemas.auth import (
    RefreshIn,
    RegisterIn,
    RegisterOut,
    ResendVerificationOut,
    TokenIn,
    TokenOut,
    VerifyEmailIn,
    VerifyEmailOut,
)
from api.schemas.orders import EmptyIn
from api.services import Services, services
from api.tokens import Claims, TokenError
from commands.accounts import Register, Registered, SameButThePassword
from ugc.errors import Conflict, InvalidToken
from ugc.platform.blocking import turn


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
    wait = s.settings.queue_timeout
    async with turn(s.registering, wait), turn(s.hashing, wait):
        try:
            registered = await s.run(s.accounts.register, command)
        except Conflict as taken:  # perhaps by this same registration, whose answer was lost
            registered = await _registered_before(request, s, command, taken)
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
    async with s.throttle.attempt(s.run, throttle.subjects(_address(request))) as attempt:
        try:
            positions = await s.run(s.accounts.verify_email, body.token, s.settings.secret_keys)
        except InvalidToken:
            attempt.count()
            raise
    await s.settle(positions)
    return JSON({"message": "Email успешно подтвержден"})


async def _registered_before(request: Request, s: Services, command: Register, taken: Conflict) -> Registered:
    """The account of a registration sent again, or `taken` raised again. Its password is checked as a
    sign-in's is, within the sign-ins' limits for the username from this address."""
    async with s.throttle.attempt(s.run, throttle.subjects(_address(request), command.username)) as attempt:
        try:
            registered = await s.run(s.accounts.registered_before, command)
        except SameButThePassword:
            attempt.count()
            raise taken from None
    if registered is None:
        raise taken
    return registered


async def resend_verification(request: Request) -> Response:
    """Mail a new verification link to the signed-in user; 409 once the e-mail is verified."""
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    await parse(request, EmptyIn)
    await s.run(s.accounts.refuse_verified, user_id)
    async with s.throttle.attempt(s.run, throttle.resends(user_id)) as attempt:
        positions = await s.run(s.accounts.resend_verification, user_id)
        attempt.count()  # a mail sent
    await s.settle(positions)
    return JSON({"message": "Письмо со ссылкой подтверждения отправлено."})


async def token(request: Request) -> Response:
    body = await parse(request, TokenIn)
    s = services(request)
    async with s.throttle.attempt(s.run, throttle.subjects(_address(request), body.username)) as attempt:
        async with turn(s.hashing, s.settings.queue_timeout):
            user_id = await s.run(s.accounts.authenticate, body.username, body.password)
        if user_id is None:
            attempt.count()
            raise errors.unauthorized("wrong_credentials")
    try:
        pair = await s.run(s.sessions.start, user_id)
    except TokenError:  # erased meanwhile: as if it had been before the password was checked
        raise errors.unauthorized("wrong_credentials") from None
    return JSON(pair.as_json())


async def _presented_refresh(request: Request) -> Claims:
    """The claims of the body's refresh token; 401 for a bad one or one whose user does not exist."""
    body = await parse(request, RefreshIn)
    s = services(request)
    try:
        claims = s.tokens.claims(body.refresh, "refresh")
    except TokenError:
        raise errors.unauthorized("invalid_token") from None
    # Read again, not taken from what the process keeps: a refresh is rare, and an erasure cut short
    # before it ended the person's sessions told no process to forget their standing.
    if await s.run(s.standings.load, claims.user_id) is None:
        raise errors.unauthorized("invalid_token")
    return claims


async def refresh(request: Request) -> Response:
    """A new access token and a new refresh token; the presented one is spent (`api/sessions.py`)."""
    claims = await _presented_refresh(request)
    s = services(request)
    try:
        pair = await s.run(s.sessions.rotate, claims)
    except TokenError:
        raise errors.unauthorized("invalid_token") from None
    return JSON(pair.as_json())


async def logout(request: Request) -> Response:
    """End the session of the presented refresh token: none of its family's refresh tokens works again."""
    claims = await _presented_refresh(request)
    s = services(request)
    try:
        await s.run(s.sessions.end, claims)
    except TokenError:
        raise errors.unauthorized("invalid_token") from None
    return Response(status_code=204)


routes = [
    endpoint(
        "POST",
        "/api/auth/register/",
        register,
        Operation(
            "Регистрация пользователя (повтор той же регистрации отвечает 201 с тем же аккаунтом)",
            RegisterIn,
            RegisterOut,
            status=201,
            auth=False,
            conflict="unique",
            throttled=True,
        ),
    ),
    endpoint(
        "POST",
        "/api/auth/verify-email/",
        verify_email,
        Operation("Верификация email", VerifyEmailIn, VerifyEmailOut, auth=False, throttled=True),
    ),
    endpoint(
        "POST",
        "/api/auth/resend-verification/",
        resend_verification,
        Operation(
            "Повторная отправка письма подтверждения",
            EmptyIn,
            ResendVerificationOut,
            open_to_unverified=True,
            conflict="done",
            throttled=True,
        ),
    ),
    endpoint(
        "POST",
        "/api/auth/token/",
        token,
        Operation(
            "Получение токена доступа", TokenIn, TokenOut, auth=False, credentials="wrong_credentials", throttled=True
        ),
    ),
    endpoint(
        "POST",
        "/api/auth/token/refresh/",
        refresh,
        Operation(
            "Обновление токенов (refresh-токен одноразовый; повтор обновления, чей ответ потерян, "
            "в течение UGC_REFRESH_REUSE_WINDOW секунд получает тот же новый refresh-токен)",
            RefreshIn,
            TokenOut,
            auth=False,
            credentials="invalid_token",
        ),
    ),
    endpoint(
        "POST",
        "/api/auth/logout/",
        logout,
        Operation("Выход: отзыв refresh-токена", RefreshIn, status=204, auth=False, credentials="invalid_token"),
    ),
]
