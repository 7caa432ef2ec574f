"""What a client may make `ugc serve` wait for (ugc/platform/client_limits.py), over raw sockets.

Before, a connection that sent nothing, a head sent a byte at a time or a body that stopped half-way
held its descriptor for good (uvicorn times only the gap between two requests, and any byte cancels
that), and a head had no size limit. Here UGC_CLIENT_TIMEOUT is 1 s."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.backends import environment, fresh_database
from tests.conftest import Api
from tests.servers import Server, start_server
from ugc.config import Settings
from ugc.platform.client_limits import HEAD_TOO_SLOW, MALFORMED, MAX_HEAD_BYTES
from ugc.platform.socket_protocol import HEAD_TOO_LARGE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CLIENT_TIMEOUT = 1.0
PATIENCE = 15.0  # how long a test waits for the server to act on a 1 s limit on a busy machine


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    """One server on SQLite (the limits are the HTTP protocol's, the same on every backend), and its settings."""
    tmp = tmp_path_factory.mktemp("client-limits")
    with fresh_database("sqlite", tmp) as url:
        env = environment("sqlite", url, tmp) | {"UGC_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT)}
        with start_server(env, log_dir=tmp / "logs") as started:
            yield started, Settings.from_env(env | {"UGC_PUBLIC_URL": started.url})
            assert "Traceback" not in started.log_tail(10**7), started.log_tail()


@pytest.fixture
def server(served: tuple[Server, Settings]) -> Server:
    return served[0]


def connection(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(PATIENCE)
    return sock


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, received = time.monotonic(), b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def one_answer(sock: socket.socket) -> bytes:
    """One whole answer (head and its Content-Length of body) read off a kept-alive connection."""
    received = b""
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < body_length(received):
        chunk = sock.recv(65536)
        assert chunk, f"the connection was closed after {received!r}"
        received += chunk
    return received


def body_length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def error_of(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), head
    return int(head.split()[1]), json.loads(body)["error"]


def healthz() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    answer, waited = until_closed(connection(server))
    assert answer == b""  # nobody asked anything: nothing to answer
    assert CLIENT_TIMEOUT * 0.9 <= waited < PATIENCE


def test_a_head_sent_a_byte_at_a_time_gets_408(server: Server) -> None:
    sock = connection(server)
    started = time.monotonic()
    for byte in healthz()[:-2]:  # never the blank line that ends the head
        if time.monotonic() - started > CLIENT_TIMEOUT * 3:
            break
        try:
            sock.send(bytes([byte]))
        except OSError:  # closed while we were still sending
            break
        time.sleep(0.2)
    answer, _ = until_closed(sock)
    assert error_of(answer) == (408, HEAD_TOO_SLOW)
    assert time.monotonic() - started < PATIENCE


def test_a_head_larger_than_the_limit_gets_431(server: Server) -> None:
    sock = connection(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(OSError):  # the server stops reading and closes long before the head ends
        for _ in range(100 * MAX_HEAD_BYTES // len(line)):
            sock.sendall(line)
            time.sleep(0.001)
    answer, _ = until_closed(sock)
    assert error_of(answer) == (431, HEAD_TOO_LARGE)


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 99999999999999999999999\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\n",  # then `{}`, which is no chunk: the body breaks off
    ],
    ids=["length-past-any-number", "negative-length", "two-lengths", "length-and-chunked", "broken-chunk"],
)
def test_a_request_the_parser_refuses_gets_the_apis_400(server: Server, head: bytes) -> None:
    """uvicorn answered these with `Invalid HTTP request received.`, English text/plain."""
    sock = connection(server)
    sock.sendall(b"POST /api/auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head + b"\r\n{}")
    answer, _ = until_closed(sock)
    assert error_of(answer) == (400, MALFORMED)
    assert b"content-type: application/json" in answer.partition(b"\r\n\r\n")[0].lower()


def test_a_malformed_request_line_gets_the_apis_400(server: Server) -> None:
    sock = connection(server)
    sock.sendall(b"GET /api/v1/services/?search=\xff HTTP/1.1\r\nHost: x\r\n\r\n")
    answer, _ = until_closed(sock)
    assert error_of(answer) == (400, MALFORMED)


def test_a_body_that_stops_half_way_closes_the_connection(server: Server) -> None:
    sock = connection(server)
    sock.sendall(
        b"POST /api/auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username": '
    )
    answer, waited = until_closed(sock)
    assert answer == b""  # the request never came whole: nothing to answer
    assert waited < PATIENCE
    deadline = time.monotonic() + PATIENCE  # the application hears of it just after the close
    while "client left during POST /api/auth/token/" not in server.log_tail():
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.05)


def test_a_body_that_keeps_coming_is_read_however_long_it_takes(server: Server) -> None:
    body = json.dumps({"username": "nobody-here", "password": "wrong-password-1"}).encode()
    sock = connection(server)
    sock.sendall(
        b"POST /api/auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    pieces = [body[i : i + 8] for i in range(0, len(body), 8)]  # 3 s in all, a piece every 0.4 s
    for piece in pieces:
        time.sleep(CLIENT_TIMEOUT * 0.4)
        sock.sendall(piece)
    answer, _ = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_an_idle_keep_alive_connection_is_timed_by_keep_alive_alone(server: Server) -> None:
    with connection(server) as sock:
        for _ in range(2):
            sock.sendall(healthz())
            assert one_answer(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(CLIENT_TIMEOUT * 2.5)  # between requests the client owes nothing


def test_a_websocket_outlives_the_limit(served: tuple[Server, Settings]) -> None:
    server, settings = served
    with httpx.Client(base_url=server.url, timeout=20) as http:
        anna = Api(http, settings).verified_user()  # type: ignore[arg-type]

    async def scenario() -> None:
        url = f"ws://127.0.0.1:{server.port}/ws/notifications/?token={anna['access']}"
        async with connect(url, ping_interval=None) as ws:
            await asyncio.sleep(CLIENT_TIMEOUT * 3)
            await ws.ping()  # answered: the socket is still open on both ends

    asyncio.run(scenario())
