"""The two WebSocket streams: a conversation's messages and a user's notifications.

Both authenticate with `?token=<access>`. A refused socket is accepted and then closed, because a
close code reaches the client only on an open socket (README, "Realtime", lists the codes). An
admitted one subscribes before it is accepted, so nothing sent after the client's connect returned
is missed. Pushes come from the hub (`api/realtime.py`) after the projections stored what they carry;
each socket sends its rows once, in store order (`seq`), and reads again from the store what it
may have missed (a `RESYNC`: a projection's holder changed, or its queue overflowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import jwt
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.auth import standing_for, standing_of, verified_user
from api.body import loads
from api.errors import ApiError, from_domain, invalid, message
from api.openapi import DocumentedSocket
from api.realtime import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    MESSAGE_TOO_BIG,
    NOT_FOUND,
    PROTOCOL_ERROR,
    SERVICE_RESTART,
    TOO_MANY,
    TRY_AGAIN_LATER,
    UNAUTHORIZED,
    NoRoom,
    Subscription,
    TooManySockets,
    frame,
)
from api.schemas.messaging import MessageOut, NotificationOut, SendMessageIn, render_message, render_notification
from api.services import Services, services
from api.text import unstorable_fields
from readmodels import messaging as conversations
from readmodels import notifications
from ugc.errors import DomainError, Unavailable
from ugc.notifications import notification_source
from ugc.platform.dialect import Row
from ugc.platform.numbers import natural
from ugc.platform.outages import database_away
from ugc.platform.personal_data import PersonErased
from ugc.platform.push import conversation_channel, user_channel

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0  # a client that reads nothing may never take our close frame
# Seconds between looks at an injected clock that may jump, and at the user's standing (a dictionary
# lookup while it is kept). An erasure closes the person's sockets at once (the hub is told, in
# `ugc/wiring.py`), and a socket opened meanwhile looks again once it is in the hub (`_stream`);
# this look catches any whose process did not hear of it once its standing expired.
EXPIRY_CHECK = 5.0

Reply = Callable[[str | None], Awaitable[dict[str, Any] | None]]
Render = Callable[[Row], dict[str, Any]]
StoredAfter = Callable[[int], Awaitable[list[Row]]]  # the socket's rows stored after a seq, oldest first, a chunk


# What each close code says to the client, in the catalogue's Russian (README, "Realtime", lists the
# codes): a close frame's reason is all a client is told of a refusal.
CLOSE_REASONS = {
    UNAUTHORIZED: message("invalid_token"),
    NOT_FOUND: message("socket_not_found"),
    BAD_REQUEST: message("socket_bad_since"),
    TOO_MANY: message("socket_too_many"),
    SERVICE_RESTART: message("socket_restart"),
    TRY_AGAIN_LATER: message("unavailable"),
    INTERNAL_ERROR: message("internal"),
}


async def close(websocket: WebSocket, code: int, reason: str | None = None) -> None:
    """Close with `code` and `reason` (the code's own, CLOSE_REASONS, if none)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        await asyncio.wait_for(websocket.close(code, reason or CLOSE_REASONS.get(code)), CLOSE_TIMEOUT)


class CallerGone(Exception):
    """The socket's user no longer exists or was erased: the socket is closed 4401, as its token is refused."""


async def refuse(websocket: WebSocket, code: int, reason: str | None = None) -> None:
    """Accept only to close: a close code reaches the client only on an open socket."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.accept()
    await close(websocket, code, reason)


def unauthorized(websocket: WebSocket) -> str:
    """Why a socket's token is refused, in REST's words for a 401: none given, or one that is no good."""
    return message("invalid_token" if websocket.query_params.get("token") else "not_authenticated")


def refused_while_away(endpoint: Callable[[WebSocket], Awaitable[None]]) -> Callable[[WebSocket], Awaitable[None]]:
    """`endpoint`, its socket refused 1013 (try again later) when a read before its handshake was
    answered meets the database away: a lock on a read table held past the read side's lock
    timeout, say. It failed the handshake with HTTP 500. Once accepted, a session closes 1013 itself."""

    @functools.wraps(endpoint)
    async def guarded(websocket: WebSocket) -> None:
        try:
            await endpoint(websocket)
        except Exception as error:
            if not database_away(error):
                raise
            log.warning("refusing a WebSocket: the database is unavailable (%s)", error)
            await refuse(websocket, TRY_AGAIN_LATER)

    return guarded


async def _caller(websocket: WebSocket, s: Services) -> tuple[int, str] | None:
    """The user of the socket's `?token=` and the token; None if it is missing, invalid or its user's gone,
    or given twice: as two Authorization headers are refused (api/auth.py), whichever came last was taken."""
    tokens = websocket.query_params.getlist("token")
    if len(tokens) != 1:
        return None
    token = tokens[0]
    standing = await standing_of(s, token)
    return None if standing is None else (standing.user_id, token)


# Waits until the rows about to be sent can be followed up: what they tell of is readable.
Readable = Callable[[Sequence[Row]], Awaitable[None]]


async def _at_once(rows: Sequence[Row]) -> None:
    return None


class Session:
    """A live socket: pushes out, frames in, the token's expiry and its user's standing watched, until
    one of them ends it."""

    def __init__(
        self,
        websocket: WebSocket,
        s: Services,
        token: str,
        user: int,
        subscription: Subscription,
        render: Render,
        *,
        reply: Reply | None = None,
        stored_after: StoredAfter,
        readable: Readable = _at_once,
    ) -> None:
        self.websocket = websocket
        self.s = s
        self.token = token
        self.user = user
        self.subscription = subscription
        self.render = render
        self.reply = reply
        self.stored_after = stored_after
        self.readable = readable
        self._sending = asyncio.Lock()

    async def run(self, seen: int) -> None:
        """Serve until the client leaves, the token expires, its user is gone or erased, or the hub
        closes the subscription, first sending what was stored after `seen` (a seq)."""
        pump = asyncio.create_task(self._pump(seen))
        listen = asyncio.create_task(self._listen())
        expiry = asyncio.create_task(self._expiry())
        closed = asyncio.create_task(self.subscription.closed.wait())
        tasks = {pump, listen, expiry, closed}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also when this coroutine is cancelled (the server stops): no task outlives the socket.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.cancelled():
                continue
            error = task.exception()
            if isinstance(error, CallerGone):
                await close(self.websocket, UNAUTHORIZED)
                return
            if isinstance(error, TimeoutError):
                waited = self.s.settings.ws_send_timeout
                log.info("closing a WebSocket session: its client took no frame for %g s", waited)
                await close(self.websocket, TRY_AGAIN_LATER)
                return
            if error is not None and database_away(error):
                log.warning("closing a WebSocket session: the database is unavailable (%s)", error)
                await close(self.websocket, TRY_AGAIN_LATER)
                return
            if error is not None and not isinstance(error, WebSocketDisconnect):
                log.error("WebSocket session failed", exc_info=error)
                await close(self.websocket, INTERNAL_ERROR)
                return
        if closed in done and self.subscription.close_code is not None:
            await close(self.websocket, self.subscription.close_code)
        elif expiry in done:
            await close(self.websocket, UNAUTHORIZED)

    async def send(self, body: dict[str, Any]) -> None:
        async with self._sending:
            try:
                await asyncio.wait_for(self.websocket.send_text(frame(body)), self.s.settings.ws_send_timeout)
            except RuntimeError as closed:
                # The server closed the socket itself (uvicorn, when a keepalive ping went unanswered):
                # its client is gone, as after a disconnect, and there is nothing left to close.
                raise WebSocketDisconnect(1011) from closed

    async def _pump(self, seen: int) -> None:
        seen = await self._replay(seen)
        while True:
            push = await self.subscription.queue.get()
            if push.kind == "resync" or not push.seq:
                # Rows may be stored that no one pushed, or pushed after newer ones: read them all again.
                # A push without its place (seq 0: from a process of an older version, in a rolling
                # deploy) says only that something was stored: it is read from the store too.
                seen = await self._replay(seen)
                continue
            # Pushes arrive in store order: what a replay (or a repeat) already gave is skipped.
            if push.seq <= seen:
                continue
            seen = push.seq
            await self.readable([push.row])
            await self.send(self.render(push.row))

    async def _replay(self, seen: int) -> int:
        """Send the rows stored after `seen` (a seq), oldest first; the last seq sent."""
        while rows := await self.stored_after(seen):
            await self.readable(rows)
            for row in rows:
                await self.send(self.render(row))
            seen = int(rows[-1]["seq"])
        return seen

    async def _listen(self) -> None:
        while True:
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            if self.reply is not None:
                answer = await self.reply(received.get("text"))
                if answer is not None:
                    await self.send(answer)

    async def _expiry(self) -> None:
        """Return once the token has expired or its user is gone: a token is good only while its user
        exists and is not erased (`commands/standing.py`), on a socket opened before as on a request."""
        claims = jwt.decode(self.token, options={"verify_signature": False})
        expires = float(claims["exp"])
        while (remaining := expires - self.s.clock.now().timestamp()) > 0:
            await asyncio.sleep(min(remaining, EXPIRY_CHECK))
            if await standing_for(self.s, self.user) is None:
                log.info("closing a WebSocket session: its user no longer exists or was erased")
                return


# /ws/conversations/{conversation_id}/ ---------------------------------------------------------
#
# Every check runs, and the socket subscribes, before it is accepted: once a client's connect
# returns, whatever is sent to the conversation reaches it.


@refused_while_away
async def conversation_socket(websocket: WebSocket) -> None:
    s = services(websocket)
    caller = await _caller(websocket, s)
    if caller is None:
        await refuse(websocket, UNAUTHORIZED, unauthorized(websocket))
        return
    user, token = caller
    conversation_id: int = websocket.path_params["conversation_id"]
    row = await s.run(conversations.get_conversation, s.db, conversation_id)
    # One that is not the caller's is as one that does not exist, as its REST pages answer 404: a
    # 4403 told a stranger which conversation numbers exist (DESIGN: no existence leaks).
    if row is None or user not in (row["user_a"], row["user_b"]):
        await refuse(websocket, NOT_FOUND)
        return

    async def latest() -> int:  # its latest event: what came before is in its pages
        return int(row["activity"])

    async def position_of(message: int) -> int | None:
        return await s.run(conversations.position_of, s.db, conversation_id, message)

    start = await _start(websocket, latest, position_of)
    if start is None:
        return

    async def stored_after(position: int) -> list[Row]:
        return await s.run(conversations.stored_after, s.db, conversation_id, position)

    await _stream(
        websocket,
        s,
        token,
        user,
        conversation_channel(conversation_id),
        render_message,
        reply=_sender(s, conversation_id, user),
        stored_after=stored_after,
        seen=start,
    )


def _sender(s: Services, conversation_id: int, user: int) -> Reply:
    """Incoming `{"message": "..."}`: stored by the command, pushed by the projection; errors get a
    frame, but a sender whose account is gone is refused as its token is: the socket closes 4401."""

    async def reply(text: str | None) -> dict[str, Any] | None:
        try:
            body = loads(text) if text is not None else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("message"), str):
            return {"error": message("malformed_frame")}
        if problems := unstorable_fields(body):
            return invalid(problems).body
        try:
            await verified_user(s, user)  # as for a REST write: sending needs a verified e-mail
            await s.run(s.messaging.send_message, conversation_id, user, body["message"])
        except ApiError as error:
            if error.status == 401:
                raise CallerGone from error
            return _error_frame(error)
        except PersonErased as error:  # erased moments ago, while this process still kept the standing
            raise CallerGone from error
        except DomainError as error:
            return _error_frame(from_domain(error))
        except Exception as error:
            if database_away(error):  # away or refusing writes: try again later, as REST answers 503
                log.warning("a chat frame met the database unavailable: %s", error)
                return {"error": message("unavailable")}
            raise
        return None

    return reply


def _error_frame(error: ApiError) -> dict[str, Any]:
    """An error frame (`{"error"}`, AsyncAPI's ErrorFrame) for what REST would answer, whichever key
    its body uses (403 and 404 answer `{"detail"}`)."""
    if "error" in error.body:
        return error.body
    return {"error": error.body["detail"]}


# /ws/notifications/?since= ----------------------------------------------------------------------


@refused_while_away
async def notifications_socket(websocket: WebSocket) -> None:
    s = services(websocket)
    caller = await _caller(websocket, s)
    if caller is None:
        await refuse(websocket, UNAUTHORIZED, unauthorized(websocket))
        return
    user, token = caller

    async def latest() -> int:  # only what is stored from now on
        return await s.run(notifications.last_seq, s.db, user)

    async def seq_of(notification: int) -> int | None:
        return await s.run(notifications.seq_of, s.db, user, notification)

    start = await _start(websocket, latest, seq_of)
    if start is None:
        return

    async def stored_after(seq: int) -> list[Row]:
        return await s.run(notifications.stored_after, s.db, user, seq)

    await _stream(
        websocket,
        s,
        token,
        user,
        user_channel(user),
        render_notification,
        stored_after=stored_after,
        seen=start,
        readable=_told_of(s),
    )


def _told_of(s: Services) -> Readable:
    """Notifications go out once the event each tells of is in every read model of its log: the
    notifications' read model and the orders' may be applied by different processes (their leases),
    and a creator who opened the order of a `new_order` at once was answered 404 (1 to 10 in 40, two
    workers on PostgreSQL). Not withheld for long: past the read-your-writes wait it goes anyway."""

    async def readable(rows: Sequence[Row]) -> None:
        behind: dict[str, int] = {}
        for row in rows:
            if (found := notification_source(int(row["id"]))) is not None:
                source, position, _ = found
                behind[source] = max(position, behind.get(source, 0))
        with contextlib.suppress(Unavailable):
            await s.progress.wait_async(s.db, behind, s.settings.read_your_writes_timeout)

    return readable


async def _start(
    websocket: WebSocket, latest: Callable[[], Awaitable[int]], place_of: Callable[[int], Awaitable[int | None]]
) -> int | None:
    """Where a socket's stream starts, in its rows' store order: after the row of `since=` (0: from
    the first), as a reconnecting client asks, or at the latest without it (a resync reads again from
    there). None once the socket is refused: 4400 for a `since=` that is no id or given twice, 4404
    for one that is not among the stream's rows."""
    given = websocket.query_params.getlist("since")
    if len(given) > 1:  # as a REST query parameter given twice (422, api/query.py): which one is meant?
        await refuse(websocket, BAD_REQUEST, f"since: {message('query_parameter_repeated')}")
        return None
    raw = given[0].strip() if given else ""
    since = natural(raw)
    if raw and since is None:
        await refuse(websocket, BAD_REQUEST)
        return None
    if since is None:
        return await latest()
    start = 0 if since == 0 else await place_of(since)
    if start is None:
        await refuse(websocket, NOT_FOUND)
    return start


async def _stream(
    websocket: WebSocket,
    s: Services,
    token: str,
    user: int,
    channel: str,
    render: Render,
    *,
    reply: Reply | None = None,
    stored_after: StoredAfter,
    seen: int,
    readable: Readable = _at_once,
) -> None:
    """Subscribe, accept, then serve until the socket ends, first sending what was stored after `seen`.

    The subscription comes before the replay reads anything: whatever is stored after that read
    is pushed, so nothing falls between the two.
    """
    if not s.realtime.available:
        await refuse(websocket, TRY_AGAIN_LATER)
        return
    try:
        subscription = s.realtime.subscribe(channel, user)
    except TooManySockets:
        await refuse(websocket, TOO_MANY)
        return
    except NoRoom:
        await refuse(websocket, TRY_AGAIN_LATER)
        return
    try:
        # Erased since the token was checked? An erasure heard before the socket was in the hub closed
        # none of it, but forgot the standing first: asked again now, it is read from the store. One
        # heard after this look finds the socket in the hub and closes it.
        if await standing_for(s, user) is None:
            await refuse(websocket, UNAUTHORIZED)
            return
        await websocket.accept()
        session = Session(
            websocket, s, token, user, subscription, render, reply=reply, stored_after=stored_after, readable=readable
        )
        await session.run(seen)
    except (WebSocketDisconnect, OSError):
        return
    finally:
        s.realtime.unsubscribe(subscription)


def names_a_stream(path: str) -> bool:
    """Whether `path` is one of the streams' (matched as a socket's route would match it)."""
    return any(route.path_regex.match(path) for route in routes)


def not_upgraded(method: str) -> ApiError:
    """An HTTP request to a stream's path that asks for no WebSocket: 426 Upgrade Required (the body
    websockets' own 426 has, ugc/platform/socket_protocol.py), 405 for a method no handshake uses.
    It was a 404 "Страница не найдена.", as if the stream did not exist."""
    if method not in ("GET", "HEAD"):
        return ApiError(405, {"detail": message("method_not_allowed")}, {"Allow": "GET"})
    return ApiError(426, {"error": message("websocket_expected")}, {"Upgrade": "websocket", "Connection": "Upgrade"})


async def no_such_socket(websocket: WebSocket) -> None:
    """A socket to a path that names no stream, as `/ws/conversations/abc/`: closed 4404 like an
    unknown conversation, where Starlette's router would refuse the handshake with a bare HTTP 403."""
    await refuse(websocket, NOT_FOUND)


routes = [
    DocumentedSocket(
        "/ws/conversations/{conversation_id:id}/",
        conversation_socket,
        pushes=MessageOut,
        summary=(
            "Сообщения диалога в реальном времени (участникам на любом процессе сервера); "
            "с `since=` — сначала пропущенные после этого сообщения, затем новые"
        ),
        receives=SendMessageIn,
        query=("token", "since"),
        closes=(
            UNAUTHORIZED,
            NOT_FOUND,
            BAD_REQUEST,
            MESSAGE_TOO_BIG,
            PROTOCOL_ERROR,
            TOO_MANY,
            SERVICE_RESTART,
            TRY_AGAIN_LATER,
            INTERNAL_ERROR,
        ),
    ),
    DocumentedSocket(
        "/ws/notifications/",
        notifications_socket,
        pushes=NotificationOut,
        summary="Уведомления пользователя; с `since=` — сначала пропущенные, затем новые, без пропусков и повторов",
        query=("token", "since"),
        closes=(
            UNAUTHORIZED,
            NOT_FOUND,
            BAD_REQUEST,
            MESSAGE_TOO_BIG,
            PROTOCOL_ERROR,
            TOO_MANY,
            SERVICE_RESTART,
            TRY_AGAIN_LATER,
            INTERNAL_ERROR,
        ),
    ),
]
