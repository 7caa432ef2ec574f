"""uvicorn's WebSocket protocol, its handshake answers in the API's JSON: a handshake a stop finds
unanswered is refused 503, and one websockets refuses gets the API's 4xx, neither in English text/plain.

Before it accepts, a socket's handler reads what it needs (the token's user, the conversation, where
the stream starts). A stop that comes meanwhile had uvicorn answer the handshake itself, with
"500 Internal Server Error" in text/plain, as if the application had failed; clients reconnecting
after a deploy meet stopping servers at just that moment. It is the API's 503 (the body of
`api/errors.py` `unavailable`, Retry-After), which tells a client to try again. The handler finds
the connection gone when it goes on (`ClientDisconnected`, an OSError, as for any client that left).
Handshakes already answered, and sockets open, get uvicorn's own stop: close 1012, with the reason
the API's 1012 gives.

A client's frames cost the server no memory beyond a message's bytes (`ws_max_size`): it reads
nothing more while what it writes cannot leave (a client that pings and reads nothing), and keeps no
empty piece of a fragmented message (one that never ends).

A handshake websockets refuses before the application sees it (no or a bad `Sec-WebSocket-Key`,
another version than 13, a method other than GET, a header line past its 8 KiB) was answered
"Failed to open a WebSocket connection: ..." in English text/plain; it gets the API's answer to such
a request, as the HTTP side's refusals do (`ugc/platform/client_limits.py`). So does an open socket
websockets closes itself (a frame too big, text not in UTF-8, a broken frame): the reason its close
frame carries is the API's Russian, not the library's English ("frame with 80013 bytes exceeds limit
of 65536 bytes").
"""

from __future__ import annotations

import email.utils
import json
from http import HTTPStatus
from typing import Any

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.frames import CloseCode, Frame
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.typing import StatusLike

# api/errors.py's messages, which this layer may not import (tests/test_served_bad_input.py holds the
# copies to them), and the refusal of a head too large, which client_limits' 431 says too.
UNAVAILABLE = "Сервис временно перегружен, повторите запрос позже."
MALFORMED_HANDSHAKE = "Некорректный запрос на открытие WebSocket-соединения."
HEAD_TOO_LARGE = "Заголовки запроса слишком велики."
METHOD_NOT_ALLOWED = "Метод не разрешен."
FORBIDDEN = "У вас недостаточно прав для выполнения данного действия."
INTERNAL = "Внутренняя ошибка сервера."
BROKEN_FRAME = "Кадр нарушает протокол WebSocket."
NOT_UTF8 = "Текст кадра не в кодировке UTF-8."
RESTART = "Пуши могли потеряться: переподключитесь с since=."

# A refusal's body by its status, in the API's shapes (`{"detail"}` for 403/405/500, as its routes
# answer them); any other status is a malformed handshake (400, 426 for a missing upgrade, 505).
_REFUSALS: dict[int, dict[str, str]] = {
    HTTPStatus.FORBIDDEN: {"detail": FORBIDDEN},
    HTTPStatus.METHOD_NOT_ALLOWED: {"detail": METHOD_NOT_ALLOWED},
    HTTPStatus.REQUEST_URI_TOO_LONG: {"error": HEAD_TOO_LARGE},
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: {"error": HEAD_TOO_LARGE},
    HTTPStatus.INTERNAL_SERVER_ERROR: {"detail": INTERNAL},
}


class ApiWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        made = self.conn
        self.conn = _JsonRefusingServer(
            extensions=made.available_extensions, max_size=self.config.ws_max_size, logger=made.logger
        )

    # While what this side writes cannot leave, it reads nothing more: every ping a client sends is
    # answered with a pong, and one that sent pings and read nothing grew the write buffer without
    # bound (12 MB a second, the realtime hunt). TCP's own flow control then stalls the client's sends,
    # as websockets' own server does by waiting for each pong to drain before it reads on.

    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused:  # uvicorn's own pause: a message the application has yet to take
            self.transport.resume_reading()

    async def receive(self) -> ASGIReceiveEvent:
        received = await super().receive()
        if not self.writable.is_set():  # uvicorn resumed reading once the application took its message
            self.transport.pause_reading()
        return received

    def handle_cont(self, event: Frame) -> None:
        # websockets bounds a message's bytes (ws_max_size), not its pieces: empty continuation frames
        # without end each added an entry to uvicorn's list of pieces, for as long as the client sent.
        if event.data or event.fin:
            super().handle_cont(event)

    def shutdown(self) -> None:
        if self.handshake_complete or self.close_sent or self.initial_response is not None:
            super().shutdown()
            return
        self.stop_keepalive()
        self.conn.send_response(_json(HTTPStatus.SERVICE_UNAVAILABLE, {"detail": UNAVAILABLE}, retry_after=True))
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()


class _JsonRefusingServer(ServerProtocol):
    """websockets' server side of the handshake, every refusal (its own, and uvicorn's 500) in JSON,
    and of an open socket, which it fails with a Russian reason."""

    def reject(self, status: StatusLike, text: str) -> Response:
        refused = HTTPStatus(status)
        return _json(refused, _REFUSALS.get(refused, {"error": MALFORMED_HANDSHAKE}))

    def send_close(self, code: CloseCode | int | None = None, reason: str = "") -> None:
        # uvicorn closes every open socket 1012 at a stop and says nothing: it says what the API's 1012 says.
        if code == CloseCode.SERVICE_RESTART and not reason:
            reason = RESTART
        super().send_close(code, reason)

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        reasons: dict[CloseCode | int, str] = {
            CloseCode.PROTOCOL_ERROR: BROKEN_FRAME,
            CloseCode.INVALID_DATA: NOT_UTF8,
            # api/asyncapi.py's words for 1009, of the size this server was given
            CloseCode.MESSAGE_TOO_BIG: f"Кадр больше {(self.max_message_size or 0) // 1024} КиБ.",
        }
        super().fail(code, reasons.get(code, ""))


def _json(status: HTTPStatus, body: dict[str, str], *, retry_after: bool = False) -> Response:
    content = json.dumps(body, ensure_ascii=False).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(content))),
            ("Connection", "close"),
        ]
    )
    if retry_after:
        headers["Retry-After"] = "1"
    return Response(status.value, status.phrase, headers, content)
