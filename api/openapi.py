"""Routes that describe themselves, and the OpenAPI 3.1 document built from those descriptions.

An `Operation` declares what its route answers: the body model of each success status (and of any
status that has a body of its own), or the media type of a body that is not JSON, and a few facts
about what the operation does (who may do it, whether it moves an order's state, takes `If-Match`
and `If-None-Match`, is throttled). The errors it can answer are derived from those facts and from
its shape (auth, path ids, body, query, method) in one place, `Operation.errors()`, not listed per
route. The document is built from these declarations, and the API tests hold every answer to them
(tests/response_check.py), errors included, so the document says what the routes really answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, RootModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Route, WebSocketRoute

import api.ids  # noqa: F401  (registers the `{name:id}` path convertor before any route is built)
from api.arrival import arriving
from api.auth import guarded
from api.errors import ACCEPT_BY_METHOD
from api.negotiation import negotiated
from api.query import storable_query
from api.schemas.errors import ERROR_BODIES
from api.schemas.examples import ERROR_EXAMPLES, EXAMPLES, PAGE_EXAMPLES
from api.schemas.out import Page
from api.schemas.parameters import HEADERS, PARAMETERS, QUERY_PARAMETERS, path_parameter

JSON_MEDIA_TYPE = "application/json"
IDEMPOTENT = "__idempotent__"  # set on a handler by api.idempotency.idempotent

# Who may run an operation besides being signed in; anyone else visible to it gets 403.
Who = Literal["", "creator", "owner", "participant", "buyer", "admin"]
_WHO = {
    "creator": "только пользователь с профилем креатора",
    "owner": "только владелец объекта (креатор, который его создал)",
    "participant": "только участник заказа с нужной ролью (покупатель или креатор)",
    "buyer": "только покупатель (не креатор сервиса)",
    "admin": "только администратор",
}
# What a 409 means for the operation.
Conflict = Literal["", "state", "unique", "done", "erased"]


@dataclass(frozen=True)
class FormField:
    """A file part of a multipart/form-data body (its text fields are the operation's `form_model`)."""

    name: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers.

    `response` is the JSON body answered with `status` (a page of them when `paginated`); `also`
    names other statuses the route answers with a body of their own (an existing conversation's
    200, readiness' 503). A body that is not JSON has `media_type` instead (`*/*`: whatever the
    stored file is). Errors answer the shared bodies of api/schemas/errors.py; which ones follow
    from the facts below (see `errors`).

    - `auth`: a bearer token is required (True), taken if sent (`"optional"`), or not read (False);
    - `credentials`: the body carries credentials that may be refused (401), named by the message
      key of that refusal (api/errors.py);
    - `operator_token`: when the operator configured a token for it, only its bearer is answered (401);
    - `who`: who, among those who can see the object, may do this (403 for the others);
    - `conflict`: `"state"` for a command the order's status may refuse (registered as under way on
      the order of the path's `id` from its arrival: api/arrival.py), `"unique"` for one that
      creates what may exist already, `"done"` for one that can be done only once, `"erased"` for
      one addressed to a person whose account was erased (409);
    - `missing`: the object may be missing although no path id names it (404, e.g. "my profile");
    - `preconditions`: a write that takes `If-Match` and `If-None-Match` on the object's version (412
      when one is false: api/versions.py); `etag`: answers `ETag` (and, for a GET, 304 without a body
      to an `If-None-Match` that names it: `DocumentedRoute.answers`);
    - `throttled`: failures are counted per user and address (429 with `Retry-After`); an attempt
      waits 3 s at most for those in flight to end (503 after);
    - `storage`: reads or writes the database (503 when it is unreachable or a read model lags);
    - `ranges`: serves a stored file: byte ranges (`Range`: 206 with the part, 416 past its end) and
      revalidation (304 for a matching `If-None-Match` or `If-Modified-Since`);
    - `open_to_unverified`: a signed-in write that a user whose e-mail is not verified may make (others: 403).
    """

    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool | Literal["optional"] = True
    paginated: bool = False
    query: tuple[str, ...] = ()
    form: tuple[FormField, ...] = ()
    form_model: type[BaseModel] | None = None
    also: tuple[tuple[int, type[BaseModel]], ...] = ()
    media_type: str = JSON_MEDIA_TYPE
    description: str = ""
    credentials: str = ""
    operator_token: bool = False
    who: Who = ""
    conflict: Conflict = ""
    missing: bool = False
    preconditions: bool = False
    etag: bool = False
    throttled: bool = False
    storage: bool = True
    ranges: bool = False
    # A write by a user whose e-mail is not verified yet is refused with 403, unless it is open to them.
    open_to_unverified: bool = False

    def __post_init__(self) -> None:
        json_body = self.media_type == JSON_MEDIA_TYPE
        if self.status == 204 and self.response is not None:
            raise ValueError(f"{self.summary}: a 204 has no body")
        if json_body and self.status != 204 and self.response is None:
            raise ValueError(f"{self.summary}: a JSON answer needs its response model")
        if not json_body and (self.response is not None or self.paginated):
            raise ValueError(f"{self.summary}: a {self.media_type} answer has no response model")
        unknown = [name for name in self.query if name not in QUERY_PARAMETERS]
        if unknown:
            raise ValueError(f"{self.summary}: undescribed query parameters {unknown} (api/schemas/parameters.py)")

    def answers(self) -> dict[int, type[BaseModel] | None]:
        """Status -> the model of its JSON body (None: no body, or one that is not JSON)."""
        model: type[BaseModel] | None = self.response
        if model is not None and self.paginated:
            model = Page[model]  # type: ignore[valid-type]
        return {self.status: model, **dict(self.also), **({206: None, 304: None} if self.ranges else {})}

    def query_names(self) -> tuple[str, ...]:
        return (*self.query, *(("page", "page_size") if self.paginated else ()))

    def refusal(self) -> str:
        """The message key of the 401 to show as this operation's example: the spec's "no credentials"
        only where a request without them is refused; a login or a refresh token refused, or a token
        sent where one is only taken if sent, answers its own sentence (DESIGN.md, "401 texts")."""
        if self.auth is True or self.operator_token:
            return "not_authenticated"
        return self.credentials or "invalid_token"

    def form_as_json(self) -> bool:
        """Whether the form may come as a JSON object of its text fields too: one whose file is optional
        (an update), as api/image_forms.py reads it."""
        return bool(self.form) and not any(field.required for field in self.form)

    def needs_verified(self, method: str) -> bool:
        """Every signed-in write needs a verified e-mail: what others see or what costs storage."""
        return method != "GET" and self.auth is True and not self.open_to_unverified

    def errors(self, method: str, path: str, idempotent: bool = False) -> dict[int, str]:
        """Every error status this operation can answer, with why (the order of DESIGN.md's checks)."""
        why: dict[int, list[str]] = {}

        def add(status: int, reason: str) -> None:
            why.setdefault(status, []).append(reason)

        if self.media_type != "*/*":
            add(406, f"`Accept` не принимает `{self.media_type}`")
        if self.auth:
            add(401, "нет токена или токен недействителен" if self.auth is True else "переданный токен недействителен")
        if self.credentials:
            add(401, "неверные учетные данные")
        if self.operator_token:
            add(401, "токен оператора задан, а Bearer-токен запроса не он")
        if self.request is not None:
            add(400, "тело запроса не JSON или не объект")
            add(415, "непустое тело не `application/json` (см. `Accept`) или не в UTF-8")
        if self.form:
            add(400, "тело multipart/form-data не удалось прочитать")
            json_too = " и не `application/json`" if self.form_as_json() else ""
            add(415, f"тело не `multipart/form-data`{json_too} (см. `Accept`)")
        if self.request is not None or self.form:
            add(413, "тело запроса слишком велико")
            add(415, "тело запроса сжато (`Content-Encoding` не `identity`)")
            add(422, "поле тела запроса не прошло проверку")
        if self.query_names():
            add(422, "параметр запроса не прошел проверку или передан несколько раз")
        if idempotent:
            add(422, "недопустимый Idempotency-Key или он уже использован для другого запроса")
            add(409, "запрос с этим Idempotency-Key еще выполняется")
            add(409, "запрос с этим Idempotency-Key уже выполнен, но его ответ потерян")
        if PATH_PARAMETER.search(path) or self.paginated or self.missing:
            add(404, "объект не найден или не виден вызывающему" if not self.paginated else "нет такой страницы")
        if self.needs_verified(method):
            add(403, "запись до подтверждения email")
        if self.who:
            add(403, _WHO[self.who])
        if self.conflict == "state":
            add(409, "заказ в статусе, из которого это действие недоступно (`status` — текущий)")
        elif self.conflict == "unique":
            add(409, "такой объект уже существует")
        elif self.conflict == "done":
            add(409, "это уже сделано")
        elif self.conflict == "erased":
            add(409, "аккаунт собеседника удален")
        if self.preconditions:
            add(412, "`If-Match` называет версию, которой у объекта больше нет")
            add(412, "`If-None-Match` — `*` или называет текущую версию объекта")
        if self.ranges:
            add(416, "диапазон `Range` начинается за концом файла (`Content-Range` — размер файла)")
        if self.throttled:
            add(429, "слишком много неудачных попыток или писем подтверждения (см. `Retry-After`)")
            add(503, "слишком много попыток одновременно: начатые не завершились за 3 с (см. `Retry-After`)")
        if self.storage:
            add(503, "база данных недоступна (см. `Retry-After`)")
            if method != "GET":
                retry = " (повтор с тем же Idempotency-Key вернет ее ответ)" if idempotent else ""
                add(503, f"команда сохранена, но модели чтения не успели ее отразить{retry}")
        own = set(self.answers())
        return {status: "; ".join(reasons) for status, reasons in sorted(why.items()) if status not in own}


class DocumentedRoute(Route):
    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, operation: Operation) -> None:
        self.method = method
        self.operation = operation
        self.handler = endpoint
        names = operation.query_names()
        read = storable_query(endpoint, auth=operation.auth, names=names) if names else endpoint
        guard = guarded(read, verified=self.needs_verified)
        # A command the order's status may refuse is meant for the status seen when it arrived.
        checked = arriving(guard) if operation.conflict == "state" else guard
        # `Accept` first, as DRF checks it: a request refused 406 is not even authenticated.
        super().__init__(path, negotiated(checked, operation.media_type), methods=[method])

    @property
    def needs_verified(self) -> bool:
        return self.operation.needs_verified(self.method)

    @property
    def idempotent(self) -> bool:
        return bool(getattr(self.handler, IDEMPOTENT, False))

    def answers(self) -> dict[int, type[BaseModel] | None]:
        """The operation's answers, and 304 without a body for a read that answers an ETag: a copy
        asked for again with it (`If-None-Match`) is still current (api/conditions.py)."""
        revalidated = self.method == "GET" and self.operation.etag
        return self.operation.answers() | ({304: None} if revalidated else {})

    def errors(self) -> dict[int, str]:
        return self.operation.errors(self.method, self.path, self.idempotent)

    def operation_id(self) -> str:
        """`<module>_<handler>`, stable across releases (a handler routed under two methods adds the method)."""
        module = self.handler.__module__.rsplit(".", 1)[-1]
        return f"{module}_{self.handler.__name__}"


def endpoint(method: str, path: str, handler: Callable[..., Any], operation: Operation) -> DocumentedRoute:
    return DocumentedRoute(path, handler, method, operation)


class DocumentedSocket(WebSocketRoute):
    """A WebSocket stream: the model of the frames it pushes (besides error frames), of those it takes,
    and what it is for. OpenAPI has no words for WebSockets: api/asyncapi.py describes them, and the
    tests hold every frame to the models."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        pushes: type[BaseModel],
        *,
        summary: str = "",
        receives: type[BaseModel] | None = None,
        query: tuple[str, ...] = (),
        closes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(path, endpoint)
        self.pushes = pushes
        self.summary = summary
        self.receives = receives
        self.query = query
        self.closes = closes


# `{name}` or `{name:convertor}` in a route path.
PATH_PARAMETER = re.compile(r"{(\w+)(?::(\w+))?}")

_NOT_MODIFIED = "Не изменилось: копия клиента актуальна (`If-None-Match`), ответ без тела"
_ERROR_DESCRIPTIONS = {
    400: "Некорректный запрос",
    401: "Требуется авторизация",
    403: "Доступ запрещен",
    404: "Ресурс не найден",
    406: "Ни один тип ответа не подходит под Accept",
    409: "Конфликт",
    412: "Условие на версию объекта не выполнено",
    413: "Слишком большой запрос",
    415: "Тип, сжатие или кодировка тела не поддерживаются",
    416: "Диапазон недостижим",
    422: "Ошибка валидации данных",
    429: "Слишком много попыток",
    503: "Сервис временно недоступен",
}
# What a stored file's answers carry (`Operation.ranges`, api/downloads.py): header -> its component.
# A 206 of several ranges is `multipart/byteranges`, each part with its own Content-Range.
_FILE_VALIDATORS = (("ETag", "ETag-file"), ("Last-Modified", "Last-Modified"))
_FILE_HEADERS = {
    200: (("Accept-Ranges", "Accept-Ranges"), *_FILE_VALIDATORS, ("Content-Disposition", "Content-Disposition")),
    206: (
        ("Accept-Ranges", "Accept-Ranges"),
        ("Content-Range", "Content-Range-part"),
        *_FILE_VALIDATORS,
        ("Content-Disposition", "Content-Disposition"),
    ),
    304: _FILE_VALIDATORS,
}
# Error answers that carry a header worth knowing.
_ERROR_HEADERS = {
    401: ("WWW-Authenticate",),
    412: ("ETag",),
    415: ("Accept", "Accept-Encoding"),
    416: ("Content-Range",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}

_TAGS = {
    "auth": "Регистрация, подтверждение email, токены",
    "users": "Текущий пользователь и его профиль креатора",
    "creators": "Публичные профили креаторов и отзывы о них",
    "categories": "Категории сервисов",
    "skills": "Справочник навыков",
    "creator-skills": "Навыки креаторов",
    "portfolio": "Портфолио креаторов",
    "portfolio-images": "Изображения портфолио",
    "services": "Сервисы (услуги креаторов)",
    "orders": "Заказы, их жизненный цикл, доставки, отзывы, история",
    "files": "Файлы пользователя",
    "conversations": "Диалоги и сообщения (в реальном времени — WebSocket, см. /api/asyncapi/)",
    "notifications": "Уведомления (в реальном времени — WebSocket, см. /api/asyncapi/)",
    "meta": "Служебное: здоровье, готовность, схема, документация",
}


def tag_of(path: str) -> str:
    """The resource a path belongs to: its first segment after `/api/` (and `/v1/`)."""
    parts = [part for part in path.strip("/").split("/") if part not in ("api", "v1")]
    if not parts or parts[0] in ("healthz", "readyz", "schema", "docs", "redoc", "asyncapi", "metrics"):
        return "meta"
    if parts[0] == "media":
        return "portfolio"
    return parts[0] if parts[0] in _TAGS else "meta"


def openapi_document(routes: Sequence[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    documented = [r for r in routes if isinstance(r, DocumentedRoute)]
    keyed: dict[type[BaseModel], JsonSchemaMode] = {}
    for route in documented:
        for model in _response_models(route.operation):
            keyed[model] = "serialization"
    for model in set(ERROR_BODIES.values()):
        keyed[model] = "serialization"
    for route in documented:
        if route.operation.request is not None:
            keyed[route.operation.request] = "validation"
        if route.operation.form_as_json() and route.operation.form_model is not None:
            keyed[route.operation.form_model] = "validation"
    _check_unique_names(keyed)
    refs, definitions = models_json_schema(
        sorted(keyed.items(), key=lambda pair: pair[0].__name__), ref_template="#/components/schemas/{model}"
    )
    ref = {model: refs[(model, mode)] for model, mode in keyed.items()}
    paths: dict[str, dict[str, Any]] = {}
    ids: dict[str, DocumentedRoute] = {}
    twice = {r.handler for r in documented if sum(o.handler is r.handler for o in documented) > 1}
    for route in documented:
        path = PATH_PARAMETER.sub(r"{\1}", route.path)
        operation_id = route.operation_id() + (f"_{route.method.lower()}" if route.handler in twice else "")
        if operation_id in ids:
            raise ValueError(f"two operations named {operation_id}: {ids[operation_id].path} and {route.path}")
        ids[operation_id] = route
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, operation_id, ref)
    used_tags = {tag_of(route.path) for route in documented}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "HTTP API UGC Market. Ошибки — общие тела из components (тексты — из спецификации). "
                "Два потока WebSocket (`/ws/conversations/{id}/`, `/ws/notifications/`) описаны документом "
                "AsyncAPI по адресу `/api/asyncapi/`."
            ),
        },
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items() if name in used_tags],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "parameters": PARAMETERS,
            "headers": HEADERS,
        },
        "x-asyncapi": "/api/asyncapi/",
    }


def _response_models(op: Operation) -> Iterable[type[BaseModel]]:
    return (model for model in op.answers().values() if model is not None)


def _check_unique_names(models: Iterable[type[BaseModel]]) -> None:
    """Two models of one name would be renamed by pydantic behind the document's back: refuse them."""
    seen: dict[str, type[BaseModel]] = {}
    for model in models:
        other = seen.setdefault(model.__name__, model)
        if other is not model:
            raise ValueError(f"two models named {model.__name__}: {other.__module__} and {model.__module__}")


def _header_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _operation(route: DocumentedRoute, operation_id: str, ref: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    op = route.operation
    parameters: list[dict[str, Any]] = [path_parameter(name, kind) for name, kind in PATH_PARAMETER.findall(route.path)]
    parameters += [{"name": name, "in": "query", **QUERY_PARAMETERS[name]} for name in op.query_names()]
    # Written out rather than referenced: tools that list an operation's parameters by name see them.
    if op.preconditions:
        parameters += [PARAMETERS["If-Match"], PARAMETERS["If-None-Match-write"]]
    if 304 in route.answers():
        parameters.append(PARAMETERS["If-None-Match"])
    if op.ranges:
        parameters += [PARAMETERS["Range"], PARAMETERS["If-Range"], PARAMETERS["If-Modified-Since"]]
    if route.idempotent:
        parameters.append(PARAMETERS["Idempotency-Key"])
    parameters.append(PARAMETERS["X-Request-ID"])
    responses: dict[str, Any] = {}
    for status, model in sorted(route.answers().items()):
        description = _NOT_MODIFIED if status == 304 else op.summary
        answer: dict[str, Any] = {"description": description, "headers": {"X-Request-ID": _header_ref("X-Request-ID")}}
        if op.etag and (status < 300 or status == 304):
            answer["headers"]["ETag"] = _header_ref("ETag")
        if op.ranges:
            answer["headers"] |= {name: _header_ref(ref_name) for name, ref_name in _FILE_HEADERS.get(status, ())}
        if model is not None:
            media: dict[str, Any] = {"schema": ref[model]}
            example = PAGE_EXAMPLES.get(op.response) if op.paginated else EXAMPLES.get(model)
            if example is not None and status == op.status:
                media["example"] = example
            answer["content"] = {JSON_MEDIA_TYPE: media}
        elif op.media_type != JSON_MEDIA_TYPE and status in (op.status, 206):
            media_types = (op.media_type, "multipart/byteranges") if status == 206 else (op.media_type,)
            answer["content"] = {name: {"schema": {"type": "string", "format": "binary"}} for name in media_types}
        responses[str(status)] = answer
    for status, reason in route.errors().items():
        headers = {"X-Request-ID": _header_ref("X-Request-ID")}
        named = _ERROR_HEADERS.get(status, ())
        if status == 415 and route.method in ACCEPT_BY_METHOD:
            named += (ACCEPT_BY_METHOD[route.method],)
        headers |= {name: _header_ref(name) for name in named}
        responses[str(status)] = {
            "description": f"{_ERROR_DESCRIPTIONS[status]}: {reason}.",
            "headers": headers,
            "content": {
                JSON_MEDIA_TYPE: {
                    "schema": ref[ERROR_BODIES[status]],
                    "example": ERROR_EXAMPLES[status](op.conflict, tag_of(route.path), op.refusal()),
                }
            },
        }
    document: dict[str, Any] = {
        "operationId": operation_id,
        "summary": op.summary,
        "tags": [tag_of(route.path)],
        "parameters": parameters,
        "responses": responses,
    }
    if op.description:
        document["description"] = op.description
    if op.request is not None:
        media = {"schema": ref[op.request]}
        if op.request in EXAMPLES:
            media["example"] = EXAMPLES[op.request]
        document["requestBody"] = {"required": _body_required(op.request), "content": {JSON_MEDIA_TYPE: media}}
    if op.form:
        content: dict[str, Any] = {"multipart/form-data": {"schema": _form_schema(op)}}
        if op.form_as_json() and op.form_model is not None:
            content[JSON_MEDIA_TYPE] = {"schema": ref[op.form_model]}
        document["requestBody"] = {"required": True, "content": content}
    if op.auth is True:
        document["security"] = [{"bearer": []}]
    elif op.auth == "optional":
        document["security"] = [{}, {"bearer": []}]
    else:
        document["security"] = []
    return document


def _form_schema(op: Operation) -> dict[str, Any]:
    """A multipart body: its text fields as `form_model` checks them (bounds, which are required), so
    the document cannot promise less than the form is held to; then its file parts."""
    text = op.form_model.model_json_schema() if op.form_model is not None else {}
    properties = {
        name: {key: value for key, value in schema.items() if key != "title"}
        for name, schema in text.get("properties", {}).items()
    }
    properties |= {field.name: {"type": "string", "format": "binary"} for field in op.form}
    required = [*text.get("required", []), *(field.name for field in op.form if field.required)]
    return {"type": "object", "properties": properties, "required": required}


def _body_required(model: type[BaseModel]) -> bool:
    """A body none of whose fields is required may be left out (it reads as `{}`)."""
    if issubclass(model, RootModel):
        return True
    return any(field.is_required() for field in model.model_fields.values())
