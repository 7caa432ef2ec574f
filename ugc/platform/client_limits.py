"""What a client may make `ugc serve` wait for: uvicorn's HTTP protocol with the limits nginx puts in
front of an application (`client_header_timeout`, `client_body_timeout`, `large_client_header_buffers`).

uvicorn times only the idle gap between two requests (`timeout_keep_alive`), and any byte cancels that
timer. A connection that sends nothing, a request head sent a byte every few seconds, or a body that
stops half-way therefore held its descriptor and its task for good (20,000 idle connections exhausted
a worker's descriptors), and a head had no size limit (a 100 MB header took quadratic time to parse).

Here the server waits for its client at most `client_timeout` seconds at a time: for a request's whole
head, counted from the connection's opening or from the head's first byte; for the next piece of a
body it is reading. A head that grows past `MAX_HEAD_BYTES` over several reads is refused with 431
(one that comes whole in a single read, at most the event loop's read size, is parsed as it is: it
costs one linear parse, not the growing one). A client only gets the
time the server spends waiting for it: while uvicorn itself has paused reading (a body the
application has not taken yet, pipelined requests), no limit runs. A request the parser refuses gets
the same JSON answer as these, a 400, instead of uvicorn's English text/plain.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ugc.platform.socket_protocol import HEAD_TOO_LARGE, ApiWebSocketProtocol

# nginx's default for all the header lines of a request (4 buffers of 8 KiB); an access token is ~0.3 KiB.
MAX_HEAD_BYTES = 32 * 1024

HEAD_TOO_SLOW = "Запрос не получен вовремя."
MALFORMED = "Некорректный HTTP-запрос."


class ServeConfig(uvicorn.Config):
    """uvicorn's configuration with the client limits (and the WebSocket handshakes' answers in JSON,
    `ugc/platform/socket_protocol.py`): a module-level class, so that `--workers N` can hand it to
    the worker processes it spawns."""

    def __init__(self, app: Any, *, client_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, http=LimitedHttpProtocol, ws=ApiWebSocketProtocol, **kwargs)
        self.client_timeout = client_timeout


class LimitedHttpProtocol(HttpToolsProtocol):
    """One connection. `_timer` runs while the server waits for this client: from the opening, or from
    the first byte of a head that did not come whole, until the head is whole (`_in_head`); and from
    each piece of a body to the next. A request that comes whole in one read starts no timer."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        assert isinstance(config, ServeConfig)
        self._client_timeout = config.client_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0  # of the head under way, as received (a head's end can lie inside a read)
        self._upgraded = False  # handed to the WebSocket protocol, which keeps its own time

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._upgraded or self.transport.is_closing():
            return
        if not self._in_head:  # a body under way: its next piece has the whole time again
            self._arm()
        elif self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(431, HEAD_TOO_LARGE)
        elif self._head_bytes and self._timer is None:  # a head under way: its time counts from here
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()  # the request is whole: the client waits for us now
        self._in_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """A request the parser refuses (a Content-Length that is no number, two that differ, a broken
        chunk, a method or target no HTTP allows) gets the API's 400, not uvicorn's English text/plain."""
        self._refuse(400, MALFORMED)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._upgraded = True
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self._client_timeout, self._client_too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _client_too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # uvicorn is not reading: not the client's delay
            self._arm()
        elif self._in_head and self._head_bytes:
            self._refuse(408, HEAD_TOO_SLOW)
        else:  # a connection that never sent a byte, or a body that stopped: nobody to answer
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that will not be read whole, as the API answers a malformed one, and close.
        When the answer would not be taken for this request's, just close (`_answerable`)."""
        self._disarm()
        if not self._answerable():
            self.transport.close()
            return
        body = json.dumps({"error": message}, ensure_ascii=False).encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()

    def _answerable(self) -> bool:
        """Whether an answer written now is the refused request's own: no earlier request's answer is
        under way or due (pipelining) and, for a body that breaks off (a chunk that is no chunk), the
        application has not begun the request's answer."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return True
        return not self._in_head and not self.pipeline and not cycle.response_started
