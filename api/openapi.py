"""Routes that describe themselves, and the OpenAPI 3.1 document built from those descriptions.

An `Operation` declares what its route answers: the body model of each success status (and of any
status that has a body of its own), or the media type of a body that is not JSON. The document is
built from these declarations, and the API tests hold every answer to them (tests/response_check.py),
so the document says what the routes really answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Route, WebSocketRoute

import api.ids  # noqa: F401  (registers the `{name:id}` path convertor before any route is built)
from api.auth import guarded
from api.schemas.errors import ERROR_BODIES
from api.schemas.out import Page

JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class FormField:
    """A field of a multipart/form-data body: `file` (binary), `string` or `integer`."""

    name: str
    kind: str = "string"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers.

    `response` is the JSON body answered with `status` (a page of them when `paginated`); `also`
    names other statuses the route answers with a body of their own (an existing conversation's
    200, readiness' 503). A body that is not JSON has `media_type` instead (`*/*`: whatever the
    stored file is). Errors answer the shared bodies of api/schemas/errors.py.
    """

    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    paginated: bool = False
    query: tuple[str, ...] = ()
    form: tuple[FormField, ...] = ()
    also: tuple[tuple[int, type[BaseModel]], ...] = ()
    media_type: str = JSON_MEDIA_TYPE
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

    def answers(self) -> dict[int, type[BaseModel] | None]:
        """Status -> the model of its JSON body (None: no body, or one that is not JSON)."""
        model: type[BaseModel] | None = self.response
        if model is not None and self.paginated:
            model = Page[model]  # type: ignore[valid-type]
        return {self.status: model, **dict(self.also)}


class DocumentedRoute(Route):
    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, operation: Operation) -> None:
        self.method = method
        self.operation = operation
        super().__init__(path, guarded(endpoint, verified=self.needs_verified), methods=[method])

    @property
    def needs_verified(self) -> bool:
        """Every signed-in write needs a verified e-mail: what others see or what costs storage."""
        return self.method != "GET" and self.operation.auth and not self.operation.open_to_unverified


def endpoint(method: str, path: str, handler: Callable[..., Any], operation: Operation) -> DocumentedRoute:
    return DocumentedRoute(path, handler, method, operation)


class DocumentedSocket(WebSocketRoute):
    """A WebSocket stream and the model of the frames it pushes (besides error frames).

    OpenAPI has no words for WebSockets, so this stays out of the document; the tests hold every
    frame to it.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], pushes: type[BaseModel]) -> None:
        super().__init__(path, endpoint)
        self.pushes = pushes


_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")

# The shared error bodies an operation documents, by what it takes.
_AUTH_ERRORS = (401,)
_UNVERIFIED_ERRORS = (403,)
_BODY_ERRORS = (400, 413, 422)
_QUERY_ERRORS = (422,)
_NOT_FOUND_ERRORS = (404,)


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
    _check_unique_names(keyed)
    refs, definitions = models_json_schema(
        sorted(keyed.items(), key=lambda pair: pair[0].__name__), ref_template="#/components/schemas/{model}"
    )
    ref = {model: refs[(model, mode)] for model, mode in keyed.items()}
    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        path = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
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


def _operation(route: DocumentedRoute, ref: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    op = route.operation
    path_params = _PARAM.findall(route.path)
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if kind in ("int", "id") else "string"},
        }
        for name, kind in path_params
    ]
    query = (*op.query, *(("page", "page_size") if op.paginated else ()))
    parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in query]
    responses: dict[str, Any] = {}
    for status, model in sorted(op.answers().items()):
        answer: dict[str, Any] = {"description": op.summary}
        if model is not None:
            answer["content"] = {JSON_MEDIA_TYPE: {"schema": ref[model]}}
        elif op.media_type != JSON_MEDIA_TYPE and status == op.status:
            answer["content"] = {op.media_type: {"schema": {"type": "string", "format": "binary"}}}
        responses[str(status)] = answer
    errors: list[int] = []
    if op.auth:
        errors += _AUTH_ERRORS
    if route.needs_verified:
        errors += _UNVERIFIED_ERRORS
    if op.request is not None or op.form:
        errors += _BODY_ERRORS
    if query:
        errors += _QUERY_ERRORS
    if path_params or op.paginated:
        errors += _NOT_FOUND_ERRORS
    for status in sorted(set(errors)):
        responses.setdefault(
            str(status),
            {
                "description": _ERROR_DESCRIPTIONS[status],
                "content": {JSON_MEDIA_TYPE: {"schema": ref[ERROR_BODIES[status]]}},
            },
        )
    document: dict[str, Any] = {"summary": op.summary, "parameters": parameters, "responses": responses}
    if op.request is not None:
        document["requestBody"] = {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": ref[op.request]}}}
    if op.form:
        form = {
            "type": "object",
            "properties": {
                field.name: {"type": "string", "format": "binary"} if field.kind == "file" else {"type": field.kind}
                for field in op.form
            },
            "required": [field.name for field in op.form if field.required],
        }
        document["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": form}}}
    if op.auth:
        document["security"] = [{"bearer": []}]
    return document


_ERROR_DESCRIPTIONS = {
    400: "Тело запроса не удалось прочитать.",
    401: "Учетные данные не были предоставлены или недействительны.",
    403: "Действие запрещено; в том числе любая запись до подтверждения email.",
    404: "Ресурс не найден.",
    413: "Слишком большой запрос.",
    422: "Ошибка валидации данных.",
}
