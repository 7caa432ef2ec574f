"""Routes that describe themselves, and the OpenAPI 3.1 document built from those descriptions."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

import api.ids  # noqa: F401  (registers the `{name:id}` path convertor before any route is built)
from api.auth import guarded
from api.errors import message


@dataclass(frozen=True)
class FormField:
    """A field of a multipart/form-data body: `file` (binary), `string` or `integer`."""

    name: str
    kind: str = "string"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    paginated: bool = False
    query: tuple[str, ...] = ()
    form: tuple[FormField, ...] = ()
    # A write by a user whose e-mail is not verified yet is refused with 403, unless it is open to them.
    open_to_unverified: bool = False


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


_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")


def openapi_document(routes: Sequence[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    documented = [r for r in routes if isinstance(r, DocumentedRoute)]
    requests = {r.operation.request for r in documented if r.operation.request is not None}
    responses = {r.operation.response for r in documented if r.operation.response is not None}
    keyed: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in requests]
    keyed += [(m, "serialization") for m in responses - requests]
    _, definitions = models_json_schema(
        sorted(keyed, key=lambda pair: pair[0].__name__), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        path = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(route: DocumentedRoute) -> dict[str, Any]:
    op = route.operation
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if kind in ("int", "id") else "string"},
        }
        for name, kind in _PARAM.findall(route.path)
    ]
    query = (*op.query, *(("page", "page_size") if op.paginated else ()))
    parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in query]
    body: dict[str, Any] = {"type": "object"}
    if op.response is not None:
        body = _ref(op.response)
    if op.paginated:
        body = {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "next": {"type": ["string", "null"]},
                "previous": {"type": ["string", "null"]},
                "results": {"type": "array", "items": body},
            },
        }
    responses: dict[str, Any] = {
        str(op.status): {
            "description": op.summary,
            **({"content": {"application/json": {"schema": body}}} if op.status != 204 else {}),
        }
    }
    if op.auth:
        responses["401"] = {"description": "Учетные данные не были предоставлены или недействительны."}
    if route.needs_verified:
        responses["403"] = {"description": message("email_not_verified")}
    document: dict[str, Any] = {"summary": op.summary, "parameters": parameters, "responses": responses}
    if op.request is not None:
        document["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.request)}}}
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
