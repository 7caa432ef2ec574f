"""uvicorn's WebSocket protocol, but a handshake a stop finds unanswered is refused 503, not 500.

Before it accepts, a socket's handler reads what it needs (the token's user, the conversation, where
the stream starts). A stop that comes meanwhile had uvicorn answer the handshake itself, with
"500 Internal Server Error" in text/plain, as if the application had failed; clients reconnecting
after a deploy meet stopping servers at just that moment. It is the API's 503 (the body of
`api/errors.py` `unavailable`, Retry-After), which tells a client to try again. The handler finds
the connection gone when it goes on (`ClientDisconnected`, an OSError, as for any client that left).
Handshakes already answered, and sockets open, get uvicorn's own stop: close 1012.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Response

# api/errors.py's "unavailable" (the API's every 503), which this layer may not import;
# tests/test_graceful_stop.py holds the two to one text.
UNAVAILABLE = "Сервис временно перегружен, повторите запрос позже."


class StoppingWebSocketProtocol(WebSocketsSansIOProtocol):
    def shutdown(self) -> None:
        if self.handshake_complete or self.close_sent or self.initial_response is not None:
            super().shutdown()
            return
        self.stop_keepalive()
        self.conn.send_response(_stopping())
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()


def _stopping() -> Response:
    body = json.dumps({"detail": UNAVAILABLE}, ensure_ascii=False).encode()
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Retry-After", "1"),
            ("Connection", "close"),
        ]
    )
    status = HTTPStatus.SERVICE_UNAVAILABLE
    return Response(status.value, status.phrase, headers, body)
