"""Every answer an API test receives, held to what its route declares (api/openapi.py).

`ResponseCheck` wraps the app of every in-process test client (tests/conftest.py). It passes the
traffic through untouched and, once an answer is sent, finds the route the request reached and
validates the body strictly — no key the model does not declare, no string for a number:

- a success status against the model the route's `Operation` declares for it (a page of them for a
  list, nothing for a 204 or a 304, the declared media type for bytes); a success status it does not
  declare fails too;
- an error status against the shared error body of that status (api/schemas/errors.py), unless the
  route declares a body of its own for it; an error the route's `Operation` does not derive
  (`DocumentedRoute.errors()`) fails too, so the document lists every error a route really gives
  (500 is never declared: it is a bug, and the tests that meet one fail on their own);
- every WebSocket frame against the model its `DocumentedSocket` pushes, or an error body.

A mismatch raises `ResponseMismatch` into the request that got the answer, and is also recorded,
so a test whose client swallows server errors (or whose frame went out on a socket's own task)
fails all the same (the hook in tests/conftest.py).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match
from starlette.types import Message, Receive, Scope, Send

from api.openapi import JSON_MEDIA_TYPE, DocumentedRoute, DocumentedSocket
from api.schemas.errors import ERROR_BODIES, ConflictOut, DetailOut, ErrorOut, ValidationErrorOut

# What the tests of one test have met; the hook in conftest.py empties it around each test.
MISMATCHES: list[str] = []

# What an error frame on a socket may be: the body of the REST error it stands for.
_FRAME_ERRORS: tuple[type[BaseModel], ...] = (ErrorOut, ValidationErrorOut, DetailOut, ConflictOut)


class ResponseMismatch(AssertionError):
    """An answer that is not what its route declares."""


class ResponseCheck:
    """The app under test, with every answer checked; anything else (e.g. `.state`) is the app's own."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.app(scope, receive, self._frames(scope, send))
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        __tracebackhide__ = True  # a mismatch's report is its message, not this wrapper's code
        answer: dict[str, Any] = {"status": None, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            # The server failed: its 500 is still checked, but the failure itself is what the test sees.
            if answer["status"] is not None:
                self._check_http(scope, answer)
            raise
        if answer["status"] is not None:
            problem = self._check_http(scope, answer)
            if problem is not None:
                raise ResponseMismatch(problem)

    def _check_http(self, scope: Scope, answer: dict[str, Any]) -> str | None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in answer["headers"]}
        problem = http_problem(
            self.app.routes, scope, answer["status"], headers.get("content-type", ""), bytes(answer["body"])
        )
        if problem is not None:
            MISMATCHES.append(problem)
        return problem

    def _frames(self, scope: Scope, send: Send) -> Send:
        async def checked_send(message: Message) -> None:
            if message["type"] == "websocket.send":
                problem = frame_problem(self.app.routes, scope, message.get("text"), message.get("bytes"))
                if problem is not None:
                    MISMATCHES.append(problem)
            await send(message)

        return checked_send


def route_of(routes: Iterable[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route that serves `scope` (paths work without their trailing slash, as in api/middleware.py)."""
    path = scope["path"] if scope["path"].endswith("/") else scope["path"] + "/"
    probe = {**scope, "path": path}
    for route in routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return route
    return None


def http_problem(routes: Iterable[BaseRoute], scope: Scope, status: int, content_type: str, body: bytes) -> str | None:
    """What is wrong with this answer to this request, or None when it is what its route declares."""
    route = route_of(routes, scope)
    where = f"{scope['method']} {scope['path']}"
    if isinstance(route, DocumentedRoute):
        where += f" (route {route.method} {route.path})"
    answers = route.answers() if isinstance(route, DocumentedRoute) else {}
    if status in answers:
        model = answers[status]
        assert isinstance(route, DocumentedRoute)
        if scope["method"] == "HEAD":
            return None
        if status in (204, 304):
            return None if not body else f"{where} answered {status} with a body: {body[:200]!r}"
        if model is None:
            # A 206 of several ranges is their multipart (api/openapi.py declares it beside the file's type).
            media_types = (route.operation.media_type, *(("multipart/byteranges",) if status == 206 else ()))
            if not any(fnmatch.fnmatch(_media_type(content_type), media_type) for media_type in media_types):
                return f"{where} answered {status} as {content_type!r}, but declares {' or '.join(media_types)}"
            return None
        return _json_problem(where, status, model, content_type, body)
    if status >= 400:
        if isinstance(route, DocumentedRoute) and status not in (405, 500) and status not in route.errors():
            declared = ", ".join(str(s) for s in route.errors())
            return f"{where} answered {status}, an error it does not declare (it declares {declared})"
        model = ERROR_BODIES.get(status)
        if model is None:
            return f"{where} answered {status}, an error status with no declared body (api/schemas/errors.py)"
        return _json_problem(where, status, model, content_type, body)
    if not isinstance(route, DocumentedRoute):
        return f"{where} answered {status} from a route that declares no answers (not an `endpoint`)"
    declared = ", ".join(str(s) for s in answers)
    return f"{where} answered {status}, but declares only {declared}"


def frame_problem(routes: Iterable[BaseRoute], scope: Scope, text: str | None, data: bytes | None) -> str | None:
    route = route_of(routes, scope)
    where = f"WebSocket {scope['path']}"
    if not isinstance(route, DocumentedSocket):
        return f"{where} sent a frame from a route that declares none (not a `DocumentedSocket`)"
    where += f" (route {route.path})"
    if text is None:
        return f"{where} sent a binary frame: {data!r:.200}"
    try:
        frame = json.loads(text)
    except ValueError:
        return f"{where} sent a frame that is not JSON: {text[:200]!r}"
    if isinstance(frame, dict) and ("error" in frame or "detail" in frame):
        errors = [_validation_problem(model, text) for model in _FRAME_ERRORS]
        if any(error is None for error in errors):
            return None
        return f"{where} sent an error frame that is no error body:\n{errors[0]}"
    problem = _validation_problem(route.pushes, text)
    return None if problem is None else f"{where} pushed a frame that is not {route.pushes.__name__}:\n{problem}"


def _json_problem(where: str, status: int, model: type[BaseModel], content_type: str, body: bytes) -> str | None:
    if _media_type(content_type) != JSON_MEDIA_TYPE:
        return f"{where} answered {status} as {content_type!r}, but declares JSON ({model.__name__})"
    problem = _validation_problem(model, body)
    if problem is None:
        return None
    return f"{where} answered {status} with a body that is not {model.__name__}:\n{problem}"


def _validation_problem(model: type[BaseModel], body: str | bytes) -> str | None:
    try:
        model.model_validate_json(body, strict=True)
    except ValidationError as error:
        lines = [
            f"  {'.'.join(str(part) for part in item['loc']) or '(body)'}: {item['msg']}"
            # A missing key's "input" is the whole object around it: the body below shows that.
            + ("" if item["type"] == "missing" else f" (got {_abridged(item.get('input'))})")
            for item in error.errors()
        ]
        body_text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return "\n".join([*lines, f"  body: {body_text[:600]}"])
    return None


def _abridged(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()
