"""Bad input sent to a real `ugc serve` over real HTTP, on both backends: what a property-based hunt
(schemathesis and hand-made requests, 2026-12-05) found answered wrongly, each with its exact answer.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.errors import message
from tests.backends import environment
from tests.conftest import refused
from tests.servers import Server, run_ugc, start_server, upgraded_socket
from ugc.platform import socket_protocol
from ugc.platform.socket_protocol import HEAD_TOO_LARGE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PASSWORD = "fuzz-pass-123"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64
NOT_UTF8 = "Текст должен быть в кодировке UTF-8."


@dataclass
class Served:
    server: Server
    client: httpx.Client
    creator: dict[str, str]  # a verified creator's Authorization header


@pytest.fixture(scope="module")
def served(backend: str, database_url: str, var_dir: Path) -> Iterator[Served]:
    env = environment(backend, database_url, var_dir)
    with start_server(env, log_dir=var_dir / "logs") as server, httpx.Client(base_url=server.url, timeout=20) as client:
        made = run_ugc(env, "users", "create", "--email", "hunt@example.com", "--verified", "hunt", stdin=PASSWORD)
        assert made.returncode == 0, made.stderr
        tokens = client.post("/api/auth/token/", json={"username": "hunt", "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        creator = {"Authorization": f"Bearer {tokens.json()['access']}"}
        profile = client.post("/api/v1/users/me/creator-profile/", headers=creator, json={"specialization": "Фото"})
        assert profile.status_code == 201, profile.text
        yield Served(server, client, creator)
        assert "Traceback" not in server.log_tail(10**7), server.log_tail()


def portfolio_items(served: Served) -> int:
    listed = served.client.get("/api/portfolio/", headers=served.creator)
    assert listed.status_code == 200, listed.text
    count: int = listed.json()["count"]
    return count


def test_a_form_field_that_is_not_utf8_is_422_and_nothing_is_stored(served: Served) -> None:
    """Its bytes became U+FFFD and were stored so (201), where a JSON body that is no UTF-8 is refused (415)."""
    before = portfolio_items(served)
    answer = served.client.post(
        "/api/portfolio/",
        headers=served.creator,
        data={"description": "Описание"},
        files={"title": (None, b"\xd0\x9b\xff\xfe"), "cover_image": ("logo.png", PNG, "image/png")},
    )
    assert (answer.status_code, answer.json()) == (422, refused("title", NOT_UTF8))
    assert portfolio_items(served) == before


def test_a_skills_search_past_100_characters_is_422_as_the_services_one_is(served: Served) -> None:
    """It was cut to 100 characters and searched for (200), where the document says at most 100 and the
    services listing refuses it."""
    too_long = refused("search", "Убедитесь, что это значение содержит не более 100 символов.")
    for path in ("/api/skills/", "/api/v1/services/"):
        answer = served.client.get(path, params={"search": "ф" * 101})
        assert (answer.status_code, answer.json()) == (422, too_long), path
        assert served.client.get(path, params={"search": "ф" * 100}).status_code == 200


def test_a_forms_text_fields_are_documented_as_the_form_checks_them(served: Served) -> None:
    """The document gave a form's text fields a bare type: schemathesis sent an empty title, a
    portfolio_item of 0 and a PUT without a title, all valid by it, and got 422s."""
    paths = served.client.get("/api/schema/").json()["paths"]

    def form(path: str, method: str) -> dict[str, Any]:
        schema: dict[str, Any] = paths[path][method]["requestBody"]["content"]["multipart/form-data"]["schema"]
        return schema

    for method in ("post", "put"):
        item = form("/api/portfolio/" if method == "post" else "/api/portfolio/{id}/", method)
        assert item["properties"]["title"] == {"type": "string", "minLength": 1, "maxLength": 200}
        assert "title" in item["required"]
    image = form("/api/portfolio-images/", "post")
    assert image["properties"]["portfolio_item"] | {"maximum": 0} == {"type": "integer", "minimum": 1, "maximum": 0}
    assert image["properties"]["order"] == {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}
    assert image["required"] == ["portfolio_item", "image"]
    assert form("/api/portfolio/{id}/", "patch")["required"] == []

    created = served.client.post(
        "/api/portfolio/", headers=served.creator, data={"title": "Логотип"}, files={"cover_image": ("a.png", PNG)}
    )
    assert created.status_code == 201, created.text
    untitled = served.client.put(
        f"/api/portfolio/{created.json()['id']}/", headers=served.creator, files={"description": (None, b"x")}
    )
    assert (untitled.status_code, untitled.json()) == (422, refused("title", "Обязательное поле."))


def test_the_list_filters_are_documented_with_the_bounds_and_forms_they_take(served: Served) -> None:
    """min_price past 10**12 and a created_after of no date or time form were valid by the document
    (bare number, bare string) and 422 here; schemathesis sent both."""
    paths = served.client.get("/api/schema/").json()["paths"]

    def parameter(path: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(p for p in paths[path]["get"]["parameters"] if p["name"] == name)
        schema: dict[str, Any] = found["schema"]
        return schema

    for name in ("min_price", "max_price"):
        assert parameter("/api/v1/services/", name)["maximum"] == 10**12
        past = served.client.get("/api/v1/services/", params={name: str(10**12 + 1)})
        assert (past.status_code, past.json()) == (422, refused(name, "Значение не может быть больше 1000000000000."))
    for name in ("created_after", "created_before"):
        assert parameter("/api/v1/orders/", name)["anyOf"] == [{"format": "date"}, {"format": "date-time"}]
        for value, status in (("2026-06-01", 200), ("2026-06-01T00:00:00+03:00", 200), ('"q', 422)):
            answer = served.client.get("/api/v1/orders/", headers=served.creator, params={name: value})
            assert answer.status_code == status, (name, value, answer.text)


def test_a_text_frame_that_is_not_utf8_closes_1007_and_logs_no_error(served: Served) -> None:
    """uvicorn logged it as an ERROR with a traceback, as if the server had failed."""
    token = served.creator["Authorization"].removeprefix("Bearer ")
    with upgraded_socket(served.server.port, f"/ws/notifications/?token={token}") as (sock, received):
        payload, mask = b'{"message": "\xff"}', b"\x01\x02\x03\x04"
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while chunk := sock.recv(4096):
            received += chunk
    assert received[:4] == bytes([0x88, 2]) + (1007).to_bytes(2, "big")  # a close frame: 1007, invalid data
    deadline = time.monotonic() + 5
    while "Invalid UTF-8" not in (log := served.server.log_tail(10**7)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "WARNING uvicorn.error: Invalid UTF-8 sequence received from client." in log
    assert "Traceback" not in log and " ERROR " not in log


HANDSHAKE = (
    "GET /ws/notifications/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
MALFORMED_HANDSHAKE = {"error": "Некорректный запрос на открытие WebSocket-соединения."}


@pytest.mark.parametrize(
    ("head", "status", "body"),
    [
        (HANDSHAKE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400, MALFORMED_HANDSHAKE),
        (HANDSHAKE.replace("dGhlIHNhbXBsZSBub25jZQ==", "bad"), 400, MALFORMED_HANDSHAKE),
        (HANDSHAKE.replace("Version: 13", "Version: 8"), 400, MALFORMED_HANDSHAKE),
        (HANDSHAKE + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 400, MALFORMED_HANDSHAKE),
        (HANDSHAKE.replace("GET", "POST"), 405, {"detail": message("method_not_allowed")}),
        # A line past websockets' 8 KiB, in a head within the HTTP side's 32 KiB.
        (HANDSHAKE + f"Cookie: {'c' * 9000}\r\n", 431, {"error": HEAD_TOO_LARGE}),
    ],
    ids=["no-key", "bad-key", "old-version", "two-keys", "post", "long-line"],
)
def test_a_refused_websocket_handshake_answers_the_apis_json(
    served: Served, head: str, status: int, body: dict[str, str]
) -> None:
    """websockets refused these in English text/plain ("Failed to open a WebSocket connection: ..."),
    where every other request the server refuses gets the API's JSON and a Russian message."""
    received = exchanged(served.server.port, f"{head}\r\n".encode())
    status_line, _, rest = received.partition(b"\r\n")
    headers, _, content = rest.partition(b"\r\n\r\n")
    assert status_line.split(b" ")[1] == str(status).encode(), received
    assert b"content-type: application/json" in headers.lower(), received
    assert httpx.Response(status, content=content).json() == body


def exchanged(port: int, request: bytes) -> bytes:
    """Everything the server sends back on a connection of its own for `request`, until it closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    return received


@pytest.mark.parametrize(
    ("request_line", "headers", "status"),
    [
        ("GET /ws/notifications/", "", 426),
        ("GET /ws/notifications", "", 426),
        ("GET /ws/conversations/1/?token=x", "", 426),
        ("GET /ws/notifications/", "Upgrade: websocket\r\n", 426),  # without `Connection: Upgrade`
        ("GET /ws/notifications/", "Upgrade: h2c\r\nConnection: Upgrade\r\n", 426),
        ("HEAD /ws/notifications/", "", 426),
        ("POST /ws/notifications/", "Content-Length: 0\r\n", 405),
    ],
    ids=["plain-get", "no-slash", "conversation", "no-connection-header", "other-protocol", "head", "post"],
)
def test_an_http_request_to_a_streams_path_is_told_to_upgrade(
    served: Served, request_line: str, headers: str, status: int
) -> None:
    """A request to a WebSocket's path that asks for no WebSocket was answered 404 "Страница не
    найдена.", as if the stream did not exist (the realtime hunt). It is 426 Upgrade Required, naming
    the protocol, with the body websockets' own 426 has; a method the socket never takes is 405."""
    received = exchanged(
        served.server.port, f"{request_line} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()
    )
    head, _, content = received.partition(b"\r\n\r\n")
    fields = [line.decode().partition(": ") for line in head.split(b"\r\n")[1:]]
    answer = httpx.Response(
        int(head.split(b" ")[1]),
        headers=[(name, value) for name, _, value in fields],
        content=content,
    )
    assert answer.status_code == status, received
    if status == 426:
        assert answer.headers["upgrade"] == "websocket"
        if not request_line.startswith("HEAD"):
            assert answer.json() == MALFORMED_HANDSHAKE
    else:
        assert answer.headers["allow"] == "GET"
        assert answer.json() == {"detail": message("method_not_allowed")}


def test_the_handshakes_refusals_say_what_the_api_says() -> None:
    """`ugc/platform` may not import the API's catalogue: its copies of the messages are held to it."""
    assert socket_protocol.UNAVAILABLE == message("unavailable")
    assert socket_protocol.METHOD_NOT_ALLOWED == message("method_not_allowed")
    assert socket_protocol.FORBIDDEN == message("permission_denied")
    assert socket_protocol.INTERNAL == message("internal")
    assert socket_protocol.MALFORMED_HANDSHAKE == message("websocket_expected")
    assert socket_protocol.RESTART == message("socket_restart")
