"""Every error the API answers with: one catalogue of messages, one mapping to status codes."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, InternalError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from commands.creator_access import ErasedMeanwhile
from ugc import errors as domain
from ugc.platform.blocking import Busy
from ugc.platform.media import MediaUnavailable
from ugc.platform.outages import psycopg_unavailable, refuses_writes, sqlite_unavailable
from ugc.platform.personal_data import PersonErased
from ugc.platform.recorded_log import OutOfPlaceEvent, UnreadableEvent

if TYPE_CHECKING:  # api.services imports what imports this module
    from api.services import Services

log = logging.getLogger(__name__)

MESSAGES: dict[str, str] = {
    # 400
    "malformed_json": "Некорректный JSON в теле запроса.",
    "not_an_object": "Тело запроса должно быть JSON-объектом.",
    # 415
    "unsupported_media_type": "Ожидается тело запроса в формате JSON (Content-Type: application/json).",
    "unsupported_content_coding": (
        "Тело запроса в кодировке Content-Encoding не принимается; отправьте его без сжатия (identity)."
    ),
    "unsupported_charset": (
        "Тело JSON принимается только в кодировке UTF-8 (Content-Type: application/json; charset=utf-8)."
    ),
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
    # 406: DRF's words
    "not_acceptable": "Не удалось удовлетворить условию в заголовке запроса Accept.",
    # 409
    "username_taken": "Пользователь с таким именем уже существует.",
    "email_taken": "Пользователь с таким email уже существует.",
    "creator_profile_exists": "Профиль креатора уже существует.",
    "email_already_verified": "Email уже подтвержден.",
    "concurrent_update": "Объект одновременно изменили; повторите запрос.",
    # 413 / 422 / 429
    "too_large": "Слишком большой запрос.",
    "upload_quota_exceeded": "Превышена квота хранилища: для этого файла у вас не осталось места.",
    "validation_failed": "Ошибка валидации данных.",
    "invalid_id": "Ожидается положительное целое число.",
    "query_parameter_repeated": "Параметр передан несколько раз; передайте один.",
    "page_too_deep": "Страница слишком далеко от начала списка: доступны первые {depth} записей. Уточните фильтры.",
    "unstorable_text": "Текст содержит недопустимые управляющие символы.",
    "body_field_repeated": "Поле передано в теле запроса несколько раз; передайте одно.",
    "number_out_of_range": "Число в теле запроса вне допустимого диапазона.",
    "username_characters": (
        "Введите правильное имя пользователя. Оно может содержать только буквы, цифры и знаки @/./+/-/_."
    ),
    "phone_characters": "Номер телефона может содержать только цифры, пробелы и знаки +, -, (, ).",
    "mixed_script_username": (
        "Имя пользователя не может смешивать буквы разных алфавитов (например, латиницу и кириллицу)."
    ),
    "invalid_verification_token": "Ссылка подтверждения недействительна.",
    "verification_token_used": "Ссылка подтверждения уже использована.",
    "verification_token_expired": "Срок действия ссылки подтверждения истек.",
    "throttled": "Слишком много неудачных попыток. Повторите позже.",
    "resends_throttled": "Слишком много писем подтверждения. Повторите позже.",
    # orders
    "order_not_found": "Страница не найдена.",
    "service_not_found": "Страница не найдена.",
    "order_wrong_status": "Действие недоступно в текущем статусе заказа.",
    "order_already_reviewed": "Отзыв на этот заказ уже оставлен.",
    "creator_erased": "Аккаунт креатора удален: доработка невозможна.",
    "own_service": "Нельзя заказать собственный сервис.",
    "service_inactive": "Сервис недоступен для заказа.",
    "unknown_service": "Сервис не найден.",
    "unknown_option": "Опция не относится к этому сервису.",
    "past_delivery_date": "Дата сдачи не может быть в прошлом.",
    "foreign_file": "Файл не найден среди ваших файлов.",
    "range_not_satisfiable": "Запрошенный диапазон байтов начинается за концом файла.",
    "stale_version": "Объект изменился с момента загрузки; обновите его и повторите запрос.",
    "object_exists": "Объект уже существует (If-None-Match: *); запрос не выполнен.",
    "version_unchanged": "Объект все еще в версии, названной в If-None-Match; запрос не выполнен.",
    "object_missing": "Объекта еще нет, а If-Match называет его версию; запрос не выполнен.",
    "idempotency_key_invalid": "Idempotency-Key должен быть непустой строкой не длиннее 255 символов.",
    "idempotency_key_malformed": (
        'Idempotency-Key в кавычках должен быть одной строкой "ключ" (RFC 8941): печатные символы ASCII, '
        'а " и \\ внутри — после \\.'
    ),
    "idempotency_key_repeated": "Idempotency-Key передан несколько раз; передайте один.",
    "idempotency_key_reused": "Этот Idempotency-Key уже использован для другого запроса.",
    "idempotency_key_in_flight": "Запрос с этим Idempotency-Key еще выполняется; повторите позже.",
    "idempotency_key_answer_lost": (
        "Запрос с этим Idempotency-Key уже выполнен, но его ответ потерян; прочитайте ресурс, чтобы узнать результат."
    ),
    # services
    "unknown_category": "Недопустимый первичный ключ - категория не существует.",
    "blank_tag": "Тег не может быть пустым.",
    "tag_too_long": "Тег не может быть длиннее 50 символов.",
    "too_many_tags": "Не более 20 тегов.",
    "too_many_options": "Не более 20 опций.",
    # files and uploads
    "file_not_found": "Страница не найдена.",
    "not_multipart": "Ожидается тело запроса в формате multipart/form-data.",
    "not_multipart_nor_json": (
        "Ожидается тело запроса в формате multipart/form-data или JSON (Content-Type: application/json)."
    ),
    "malformed_multipart": "Некорректное тело запроса multipart/form-data.",
    "not_utf8": "Текст должен быть в кодировке UTF-8.",
    "file_required": "Обязательное поле.",
    "file_empty": "Файл пуст.",
    "one_file_only": "Отправьте один файл.",
    "unsupported_file_type": "Недопустимый тип файла.",
    "invalid_image": (
        "Загрузите правильное изображение. Файл, который вы загрузили, поврежден или не является изображением."
    ),
    # skills, creator skills, portfolio
    "skill_not_found": "Страница не найдена.",
    "creator_skill_not_found": "Страница не найдена.",
    "portfolio_item_not_found": "Страница не найдена.",
    "portfolio_image_not_found": "Страница не найдена.",
    "skill_name_taken": "Навык с таким названием уже существует.",
    "creator_skill_exists": "Этот навык уже есть в профиле креатора.",
    "unknown_skill": "Навык не найден.",
    "unknown_portfolio_item": "Элемент портфолио не найден.",
    "invalid_level": "Уровень должен быть целым числом от 1 до 5.",
    "duplicate_skill": "Навык указан в списке больше одного раза.",
    "not_a_list": "Тело запроса должно быть JSON-массивом.",
    # conversations, messages, notifications
    "conversation_not_found": "Страница не найдена.",
    "notification_not_found": "Страница не найдена.",
    "own_conversation": "Нельзя начать диалог с самим собой.",
    "unknown_recipient": "Пользователь не найден.",
    "recipient_erased": "Аккаунт собеседника удален: отправка сообщений невозможна.",
    "message_blank": "Сообщение не может быть пустым.",
    "message_too_long": "Убедитесь, что это значение содержит не более 4000 символов.",
    "malformed_frame": 'Ожидается JSON-объект вида {"message": "текст"}.',
    "websocket_expected": "Некорректный запрос на открытие WebSocket-соединения.",  # 426
    # a WebSocket's close reasons (at most 123 bytes of UTF-8 each), by close code: api/routes/ws.py
    "socket_not_found": "Нет такого потока, диалога или id из since=.",
    "socket_bad_since": "since= должен быть id: целое число от 0.",
    "socket_too_many": "Слишком много соединений этого пользователя.",
    "socket_restart": "Пуши могли потеряться: переподключитесь с since=.",
    # 500 / 503
    "internal": "Внутренняя ошибка сервера.",
    "unreadable_event": (
        "Событие версии {version} (позиция {position} журнала {context}) не читается: журнал изменён вне "
        "приложения; что именно изменено, назовёт ugc verify."
    ),
    "out_of_place_event": (
        "Событие версии {version} (позиция {position} журнала {context}) не следует за предыдущими событиями "
        "заказа: журнал изменён вне приложения; что именно изменено, назовёт ugc verify."
    ),
    "unavailable": "Сервис временно перегружен, повторите запрос позже.",
    "media_unavailable": "Хранилище файлов временно недоступно, повторите запрос позже.",
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


# A StringConstraints pattern -> the code of the message a value that does not match it gets (422).
PATTERN_MESSAGES: dict[str, str] = {}


def explained(pattern: str, code: str) -> str:
    """`pattern`, for a StringConstraints, whose mismatch a 422 tells with the message of `code`."""
    PATTERN_MESSAGES[pattern] = code
    return pattern


def bad_request(code: str) -> ApiError:
    return ApiError(400, {"error": message(code)})


def unauthorized(code: str = "not_authenticated") -> ApiError:
    return ApiError(401, {"detail": message(code)}, {"WWW-Authenticate": 'Bearer realm="api"'})


def forbidden() -> ApiError:
    """Every 403 says the spec's one sentence (DESIGN.md: 401/403/404 carry exactly the spec's
    messages), whatever the rule that refused: an unverified e-mail, a service without revisions."""
    return ApiError(403, {"detail": message("permission_denied")})


def not_found(code: str = "not_found") -> ApiError:
    return ApiError(404, {"detail": message(code)})


def not_acceptable() -> ApiError:
    """406 for a request whose `Accept` takes none of the types its route answers in (api/negotiation.py)."""
    return ApiError(406, {"detail": message("not_acceptable")})


def invalid(fields: dict[str, list[str]]) -> ApiError:
    return ApiError(422, {"error": message("validation_failed"), "fields": fields})


def too_large(code: str = "too_large") -> ApiError:
    return ApiError(413, {"error": message(code)})


# The header that names the media types a 415 would have taken, besides `Accept`, by the request's method.
ACCEPT_BY_METHOD = {"POST": "Accept-Post", "PATCH": "Accept-Patch"}


def unsupported_media_type(code: str, method: str, accepted: str) -> ApiError:
    """415 for a body in a media type the endpoint does not take (RFC 9110 §15.5.16), `accepted` the
    ones it does: named in `Accept` (RFC 9110 §12.5.1), and for a PATCH in `Accept-Patch` too, which
    RFC 5789 §2.2 has such a 415 carry, for a POST in `Accept-Post` (W3C LDP §7.1)."""
    headers = {"Accept": accepted}
    if method in ACCEPT_BY_METHOD:
        headers[ACCEPT_BY_METHOD[method]] = accepted
    return ApiError(415, {"error": message(code)}, headers)


def unsupported_charset(method: str) -> ApiError:
    """415 for a JSON body in an encoding other than UTF-8, declared or found (api/body.py): what is
    taken is `application/json`, whose one encoding is UTF-8 (it has no `charset` parameter, RFC 8259 §11)."""
    return unsupported_media_type("unsupported_charset", method, "application/json")


def unsupported_coding() -> ApiError:
    """415 for a body in a content coding this server does not decode (RFC 9110 §15.5.16: `Accept-Encoding`
    names the codings it takes: none but identity)."""
    return ApiError(415, {"error": message("unsupported_content_coding")}, {"Accept-Encoding": "identity"})


def throttled(retry_after: int, code: str = "throttled") -> ApiError:
    return ApiError(429, {"detail": message(code)}, {"Retry-After": str(retry_after)})


def unavailable(code: str = "unavailable") -> ApiError:
    return ApiError(503, {"detail": message(code)}, {"Retry-After": "1"})


def from_domain(error: domain.DomainError) -> ApiError:
    if isinstance(error, domain.NotFound):
        return not_found(error.code)
    if isinstance(error, domain.NotAllowed):
        return forbidden()
    if isinstance(error, domain.WrongState):
        return ApiError(409, {"error": message(error.code), "status": error.current})
    if isinstance(error, domain.Conflict):
        return ApiError(409, {"error": message(error.code)})
    if isinstance(error, domain.InvalidField):
        return invalid({error.field: [message(error.code)]})
    if isinstance(error, domain.PreconditionFailed):
        if error.current is None:
            return ApiError(412, {"error": message(error.code)})
        return ApiError(412, {"error": message(error.code), "version": error.current}, {"ETag": f'"{error.current}"'})
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
        headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return JSONResponse({"detail": message("method_not_allowed")}, status_code=405, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path.

    Each method of a path is a route of its own (api/openapi.py), and Starlette's 405 names only the
    methods of the first route whose path matched: `Allow` said "GET, HEAD" where POST was served too.
    """
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def store_conflict(request: Request, exc: Exception) -> Response:
    """A version clash that survived the retries: someone else keeps changing the same object."""
    return _respond(ApiError(409, {"error": message("concurrent_update")}))


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """The event store or the read database is unreachable (or restarting): retry shortly."""
    log.warning("database unavailable: %s", exc)
    return _respond(unavailable())


async def store_internal_error(request: Request, exc: Exception) -> Response:
    """The event store's wrapping of psycopg's InternalError: a database that refuses writes for now
    (ugc/platform/outages.py) is unavailable; anything else is a bug."""
    if refuses_writes(exc):
        return await store_unavailable(request, exc)
    return await internal_error(request, exc)


async def sqlite_error(request: Request, exc: sqlite3.OperationalError) -> Response:
    """The read database's own SQLite errors (the event stores' come wrapped as OperationalError):
    503 when the file is busy or unusable for now, 500 for anything else (a wrong statement)."""
    if sqlite_unavailable(exc):
        return await store_unavailable(request, exc)
    return await internal_error(request, exc)


async def busy(request: Request, exc: Exception) -> Response:
    """Work that found no thread (or turn) free within UGC_QUEUE_TIMEOUT: it did not start; retry shortly."""
    return _respond(unavailable())


async def media_unavailable(request: Request, exc: Exception) -> Response:
    """The media store's file system refused (full, read-only, permissions): not the client's fault."""
    log.warning("media store unavailable: %s", exc)
    return _respond(unavailable("media_unavailable"))


async def erased_person(request: Request, exc: Exception) -> Response:
    """A change by someone erased moments ago, with a token whose standing this process still kept
    (commands/standing.py): refused as any of their requests is once the standing is asked again.
    One appended and then withdrawn (`ErasedMeanwhile`) is answered once the read side dropped what
    it added, or after the read-your-writes timeout: the refusal stands either way."""
    if isinstance(exc, ErasedMeanwhile):
        s: Services = request.app.state.services
        s.progress.nudge()
        with contextlib.suppress(domain.Unavailable):
            await s.progress.wait_async(s.db, exc.positions, s.settings.read_your_writes_timeout)
    return _respond(unauthorized("invalid_token"))


async def missing_aggregate(request: Request, exc: Exception) -> Response:
    return _respond(not_found())


def unhandled_error_response(method: str, path: str, request_id: str | None, exc: BaseException) -> Response:
    """The answer to an error no handler of `EXCEPTION_HANDLERS` took (api.middleware.RequestId asks):
    psycopg's own outage, unwrapped from the read pools (a lost connection, a standby refusing writes),
    is a 503 like the event store's; anything else is a bug, a 500. psycopg's errors are asked for
    here, not keyed in the table: the table is built before a server knows its database, and a server
    on SQLite never imports psycopg (`ugc.platform.dialect.psycopg_loaded`)."""
    if psycopg_unavailable(exc) or refuses_writes(exc):
        log.warning("database unavailable: %s", exc)
        return _respond(unavailable())
    return internal_error_response(method, path, request_id, exc)


def internal_error_response(method: str, path: str, request_id: str | None, exc: BaseException) -> Response:
    """The 500 answer, and one log line naming the request: no query string, no exception text.

    Both could echo what the client sent (a psycopg error quotes the parameter); the traceback, which
    may too, goes to the debug level only.
    """
    log.error("500 on %s %s (request %s): %s", method, path, request_id or "-", type(exc).__name__)
    log.debug("traceback of request %s", request_id or "-", exc_info=exc)
    return JSONResponse({"detail": message("internal")}, status_code=500)


async def unreadable_event(request: Request, exc: Exception) -> Response:
    """A 500 naming the stored event that does not decode (an order's history, the order as of a
    version), or that does not follow the events before it (the order as of a version past a gap):
    for an auditor, where the log was changed, rather than a bare internal error."""
    assert isinstance(exc, UnreadableEvent)
    recorded = exc.recorded
    log.error("500 on %s %s: %s", request.method, request.url.path, exc)
    code = "out_of_place_event" if isinstance(exc, OutOfPlaceEvent) else "unreadable_event"
    detail = message(code).format(version=recorded.version, position=recorded.position, context=recorded.context)
    return JSONResponse({"detail": detail}, status_code=500)


async def internal_error(request: Request, exc: Exception) -> Response:
    """What Starlette's last-resort handler answers, should an error escape api.middleware.RequestId."""
    request_id = getattr(request.state, "request_id", None)
    return unhandled_error_response(request.method, request.url.path, request_id, exc)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: api_error,
    domain.DomainError: domain_error,
    HTTPException: http_error,
    IntegrityError: store_conflict,
    OperationalError: store_unavailable,
    InternalError: store_internal_error,
    sqlite3.OperationalError: sqlite_error,
    Busy: busy,
    MediaUnavailable: media_unavailable,
    PersonErased: erased_person,
    AggregateNotFoundError: missing_aggregate,
    UnreadableEvent: unreadable_event,
    Exception: internal_error,
}
