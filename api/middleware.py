"""ASGI middleware that applies to every route."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import unavailable, unhandled_error_response
from ugc import events
from ugc.platform import logs

log = logging.getLogger(__name__)

# A client's own request id is kept if it is a plain token: nothing that could forge a log line.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")


# A year: browsers that saw it reach this host over https only, for as long (RFC 6797). Not
# includeSubDomains: other hosts under the same domain are not ours to pin.
STRICT_TRANSPORT = "max-age=31536000"


class HeaderDefaults:
    """The headers every HTTP answer carries unless its route set them itself.

    `Cache-Control: no-store`: nearly every answer is someone's: their profile, orders, messages, a
    private file, a pair of tokens (RFC 6749 5.1 asks `no-store` of those). Without a word from us
    HTTP lets a browser keep a download on disk (it has `Last-Modified`, from which a heuristic
    freshness follows), lets a shared cache keep a token answer (its request carries no
    `Authorization`), and a proxy told to cache (nginx's `proxy_cache_valid`) keeps anything,
    `Authorization` or not. What may be kept (public portfolio images, the docs' assets) says so in
    its own `Cache-Control`.

    `Strict-Transport-Security` when UGC_PUBLIC_URL is https: the deployment is reached over TLS, so
    a browser that met it once must never again send a request (a bearer token, a password) in
    clear to it, whatever link or typed address it is given. Over plain http browsers ignore the
    header, so it may go on every answer, whichever hop ended TLS.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = scope["app"].state.services.settings.public_url.startswith("https://")

        async def send_with_defaults(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if over_tls:
                    headers["Strict-Transport-Security"] = STRICT_TRANSPORT
            await send(message)

        await self.app(scope, receive, send_with_defaults)


class RequestId:
    """Give every HTTP request an id, answer it in `X-Request-ID`, and turn an unexpected error into one
    500 (and a request a stop cuts short into a 503, a socket's handler into a warning line).

    The id is the client's `X-Request-ID` when that is sane (so both sides' logs join), else a new one;
    routes find it in `request.state.request_id`, log lines name it, and every event the request's
    commands record carries it (`ugc.events.current_request`, copied into the blocking threads). A
    WebSocket gets the id of its handshake, answered on its accept, for what its frames cause.
    An exception that no handler maps is answered here rather than by Starlette's
    ServerErrorMiddleware, which re-raises it once answered, so the server logged a second
    traceback with the full URL: here it is one line with the id and no query values.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        request_id = sent.decode("ascii") if _SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        logged_as = logs.request_id.set(request_id)  # every log line of this request names it
        recorded_as = events.current_request.set(request_id)  # and every event it causes
        try:
            if scope["type"] == "websocket":  # a socket's frames belong to its handshake's request
                await self._socket(scope, receive, send, request_id)
            else:
                await self._http(scope, receive, send, request_id)
        finally:
            events.current_request.reset(recorded_as)
            logs.request_id.reset(logged_as)

    async def _socket(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        try:
            await self.app(scope, receive, functools.partial(_accept_with_id, send, request_id))
        except asyncio.CancelledError:
            # As for HTTP (`_http`): only a stop cancels a socket's handler, one still at work
            # UGC_STOP_GRACE seconds after the signal (a read held up before its accept: the handshake
            # was refused 503 at the stop, ugc/platform/socket_protocol.py). Nobody is left to tell.
            log.warning("cut short by the stop: WebSocket %s (request %s)", scope["path"], request_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # hung up before its body was whole: nobody to answer, nothing failed here
            log.info("client left during %s %s (request %s)", scope["method"], scope["path"], request_id)
        except asyncio.CancelledError:
            # Only a stop cancels a request: uvicorn, for what still runs UGC_STOP_GRACE seconds after
            # the signal (an upload trickling in). Left to it, the cancellation was a traceback at ERROR
            # and its text/plain 500. It is a 503 like any request this server cannot finish now: the
            # client tries again, on the server that replaces this one. Nothing half done stays: an
            # upload's bytes are discarded (kept if its command, still running in its thread, stored
            # its event: `ReceivedFile.record`), and a command is appended whole or not at all (one
            # still running in its thread ends before the lifespan closes the stores).
            log.warning("cut short by the stop: %s %s (request %s)", scope["method"], scope["path"], request_id)
            if started:  # a download half sent: its connection is closed, the client sees it end short
                raise logs.AnswerCut from None
            refusal = unavailable()
            refused = JSONResponse(refusal.body, 503, refusal.headers | {"Connection": "close"})
            with contextlib.suppress(Exception):  # the client may be gone as well
                await refused(scope, receive, send_with_id)
        except Exception as error:
            response = unhandled_error_response(scope["method"], scope["path"], request_id, error)
            if not started:  # otherwise the client sees the connection end mid-answer
                await response(scope, receive, send_with_id)


async def _accept_with_id(send: Send, request_id: str, message: Message) -> None:
    """Answer a WebSocket handshake with its request id, as an HTTP answer."""
    if message["type"] == "websocket.accept":
        message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
    await send(message)


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
