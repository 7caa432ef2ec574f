"""Every error the API answers with: one catalogue of messages, one mapping to status codes."""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ugc import errors as domain

log = logging.getLogger(__name__)

MESSAGES: dict[str, str] = {
    # 400
    "malformed_json": "Некорректный JSON в теле запроса.",
    "not_an_object": "Тело запроса должно быть JSON-объектом.",
    "unsupported_media_type": "Ожидается тело запроса в формате JSON (Content-Type: application/json).",
    # 401
    "not_authenticated": "Учетные данные не были предоставлены.",
    "invalid_token": "Токен недействителен или просрочен.",
    "wrong_credentials": "Неверное имя пользователя или пароль.",
    # 403 / 404 / 405
    "permission_denied": "У вас недостаточно прав для выполнения данного действия.",
    "not_found": "Страница не найдена.",
    "user_not_found": "Страница не найдена.",
    "creator_profile_not_found": "Страница не найдена.",
    "method_not_allowed": "Метод не разрешен.",
    # 409
    "username_taken": "Пользователь с таким именем уже существует.",
    "email_taken": "Пользователь с таким email уже существует.",
    "creator_profile_exists": "Профиль креатора уже существует.",
    "concurrent_update": "Объект одновременно изменили; повторите запрос.",
    # 413 / 422 / 429
    "too_large": "Слишком большое тело запроса.",
    "validation_failed": "Ошибка валидации данных.",
    "invalid_verification_token": "Ссылка подтверждения недействительна.",
    "verification_token_used": "Ссылка подтверждения уже использована.",
    "verification_token_expired": "Срок действия ссылки подтверждения истек.",
    "throttled": "Слишком много неудачных попыток. Повторите позже.",
    # 500 / 503
    "internal": "Внутренняя ошибка сервера.",
    "unavailable": "Сервис временно перегружен, повторите запрос позже.",
    "read_model_lagging": "Сервис временно перегружен, повторите запрос позже.",
}


class ApiError(Exception):
    """An answer other than 2xx, raised from anywhere below a route."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def message(code: str) -> str:
    return MESSAGES.get(code, code)


def bad_request(code: str) -> ApiError:
    return ApiError(400, {"error": message(code)})


def unauthorized(code: str = "not_authenticated") -> ApiError:
    return ApiError(401, {"detail": message(code)}, {"WWW-Authenticate": 'Bearer realm="api"'})


def forbidden(code: str = "permission_denied") -> ApiError:
    return ApiError(403, {"detail": message(code)})


def not_found(code: str = "not_found") -> ApiError:
    return ApiError(404, {"detail": message(code)})


def invalid(fields: dict[str, list[str]]) -> ApiError:
    return ApiError(422, {"error": message("validation_failed"), "fields": fields})


def too_large() -> ApiError:
    return ApiError(413, {"error": message("too_large")})


def throttled(retry_after: int) -> ApiError:
    return ApiError(429, {"detail": message("throttled")}, {"Retry-After": str(retry_after)})


def unavailable(code: str = "unavailable") -> ApiError:
    return ApiError(503, {"detail": message(code)}, {"Retry-After": "1"})


def from_domain(error: domain.DomainError) -> ApiError:
    if isinstance(error, domain.NotFound):
        return not_found(error.code)
    if isinstance(error, domain.NotAllowed):
        return forbidden(error.code)
    if isinstance(error, domain.WrongState):
        return ApiError(409, {"error": message(error.code), "status": error.current})
    if isinstance(error, domain.Conflict):
        return ApiError(409, {"error": message(error.code)})
    if isinstance(error, domain.InvalidField):
        return invalid({error.field: [message(error.code)]})
    if isinstance(error, domain.InvalidToken):
        return invalid({"token": [message(error.code)]})
    if isinstance(error, domain.Unavailable):
        return unavailable(error.code)
    raise TypeError(f"unmapped domain error {error!r}")


def _respond(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _respond(exc)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, domain.DomainError)
    return _respond(from_domain(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _respond(not_found())
    if exc.status_code == 405:
        return JSONResponse({"detail": message("method_not_allowed")}, status_code=405, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def store_conflict(request: Request, exc: Exception) -> Response:
    """A version clash that survived the retries: someone else keeps changing the same object."""
    return _respond(ApiError(409, {"error": message("concurrent_update")}))


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("event store unavailable: %s", exc)
    return _respond(unavailable())


async def missing_aggregate(request: Request, exc: Exception) -> Response:
    return _respond(not_found())


async def internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": message("internal")}, status_code=500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: api_error,
    domain.DomainError: domain_error,
    HTTPException: http_error,
    IntegrityError: store_conflict,
    OperationalError: store_unavailable,
    AggregateNotFoundError: missing_aggregate,
    Exception: internal_error,
}
