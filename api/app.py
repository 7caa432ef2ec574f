"""The Starlette application: routes, middleware, error handlers, per-process lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from api.conditions import NotModified
from api.errors import EXCEPTION_HANDLERS
from api.middleware import HeaderDefaults, RequestId, TrailingSlash
from api.routes import (
    auth,
    conversations,
    creator_skills,
    creators,
    files,
    media,
    meta,
    notifications,
    orders,
    pages,
    portfolio,
    reference,
    services,
    skills,
    users,
    ws,
)
from api.services import Services
from ugc.platform.forced_stop import ServerStop
from ugc.platform.stop_signals import StopRequested, raised_on_stop

log = logging.getLogger(__name__)

ROUTES = [
    *auth.routes,
    *users.routes,
    *creators.routes,
    *reference.routes,
    *files.routes,
    *orders.routes,
    *services.routes,
    *skills.routes,
    *creator_skills.routes,
    *portfolio.routes,
    *conversations.routes,
    *notifications.routes,
    *ws.routes,
    *media.routes,
    *meta.routes,
    *pages.routes,
]


def build_app(open_services: Callable[[], AbstractContextManager[Services]]) -> Starlette:
    """The ASGI app; `open_services` opens pools and clients when a worker starts and closes them at exit."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with ExitStack() as stack:
            try:
                with raised_on_stop():  # a start can wait long: a stop ends it (ugc/platform/stop_signals.py)
                    opened = stack.enter_context(open_services())
            except StopRequested:
                stack.close()  # what was opened, should the signal have come right after the start
                log.info("stopped while starting: this process serves nothing")
                yield  # uvicorn, which has the signal too, stops at once
                return
            app.state.services = opened
            ServerStop.install()  # from here a second stop signal ends the process at once
            try:
                yield
            finally:
                await opened.aclose()

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(HeaderDefaults),  # outermost: RequestId's 500s get them too
            Middleware(RequestId),
            Middleware(TrailingSlash),
            Middleware(NotModified),  # inside RequestId and HeaderDefaults: a 304 gets their headers too
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    http_not_found = app.router.default

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        """What no route matches: a 404 for HTTP (the exception handlers' body), 4404 for a socket, and
        426 for an HTTP request to a socket's path."""
        if scope["type"] == "websocket":
            await ws.no_such_socket(WebSocket(scope, receive, send))
        elif scope["type"] == "http" and ws.names_a_stream(scope["path"]):
            raise ws.not_upgraded(scope["method"])
        else:
            await http_not_found(scope, receive, send)

    app.router.default = not_found
    return app
