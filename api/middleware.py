"""ASGI middleware that applies to every route."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import invalid
from api.text import unstorable_pairs


class TrailingSlash:
    """Serve `/path` exactly as `/path/`: routes are declared with the slash, clients may omit it.

    A rewrite rather than a redirect, because a redirected POST loses its body in many clients.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope["path"].endswith("/"):
            scope = dict(scope)
            scope["path"] += "/"
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"] + b"/"
        await self.app(scope, receive, send)


class StorableQuery:
    """Refuse with 422 a query string whose text no backend can store (api/text.py), before any route.

    One check at the edge for every parameter: searches, filters and `as_of` reach SQL and the log.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
            if problems := unstorable_pairs(pairs):
                error = invalid(problems)
                await JSONResponse(error.body, status_code=error.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
