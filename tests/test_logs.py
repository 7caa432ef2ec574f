"""Structured logs: with UGC_LOG_FORMAT=json every line is one JSON object, and a request's lines name it."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.middleware import RequestId
from tests.backends import environment
from tests.servers import end_process, start_projector, start_server
from ugc.platform.logs import JsonFormatter, RequestIdFilter

log = logging.getLogger("tests.logs")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[list[str]]:
    handler = Lines()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        log.removeHandler(handler)


def test_every_line_of_a_request_names_it_even_from_a_worker_thread(lines: list[str]) -> None:
    threads = ThreadPoolExecutor(1)

    async def endpoint(request: Request) -> PlainTextResponse:
        log.info("on the event loop")
        call = contextvars.copy_context().run  # as api.services.Services.run does
        await asyncio.get_running_loop().run_in_executor(threads, call, log.info, "in a thread")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint)], middleware=[Middleware(RequestId)])
    with TestClient(app) as client:
        assert client.get("/", headers={"X-Request-ID": "req-42"}).status_code == 200
    log.info("outside any request")
    threads.shutdown()
    parsed = [json.loads(line) for line in lines]
    assert [(p["message"], p.get("request_id")) for p in parsed] == [
        ("on the event loop", "req-42"),
        ("in a thread", "req-42"),
        ("outside any request", None),
    ]
    assert {"time", "level", "logger", "message"} <= set(parsed[0])


@pytest.mark.e2e
def test_a_server_with_json_logs_writes_only_json_lines(tmp_path: Path) -> None:
    env = environment("sqlite", f"sqlite:///{tmp_path / 'ugc.sqlite3'}", tmp_path) | {
        "UGC_LOG_FORMAT": "json",
        "UGC_ACCESS_LOG": "true",
    }
    with start_server(env, log_dir=tmp_path) as server:
        answer = httpx.get(f"{server.url}/api/v1/categories/", headers={"X-Request-ID": "from-the-client-7"})
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "from-the-client-7"
        # Tokens in URLs, logged by uvicorn's access log and its socket lines: never written out.
        assert httpx.get(f"{server.url}/verify-email?token=LINK-SECRET.sig").status_code == 200
        with connect(f"ws://127.0.0.1:{server.port}/ws/notifications/?token=SOCKET-SECRET") as socket:
            with pytest.raises(ConnectionClosed):
                socket.recv(timeout=10)
        log_path = server.log_path
    text = log_path.read_text()
    assert "SECRET" not in text and "/verify-email?token=***" in text and "/ws/notifications/?token=***" in text
    parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = [p for p in parsed if p["logger"] == "uvicorn.access" and "/api/v1/categories/" in p["message"]]
    assert [p.get("request_id") for p in access] == ["from-the-client-7"]
    assert any("public URL" in p["message"] for p in parsed)  # the start-up banner, as JSON too


@pytest.mark.e2e
def test_a_projector_with_json_logs_writes_only_json_lines(tmp_path: Path) -> None:
    """`ugc project` printed "migrated" as it started, the one line of a container's log not JSON."""
    env = environment("sqlite", f"sqlite:///{tmp_path / 'ugc.sqlite3'}", tmp_path) | {
        "UGC_LOG_FORMAT": "json",
        "UGC_PROJECTIONS": "external",
    }
    log_path = tmp_path / "project.log"
    process = start_projector(env, log_path)
    try:
        deadline = time.monotonic() + 30
        while "acquired" not in log_path.read_text():  # it leads: started and migrated
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        end_process(process)
    parsed = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert any("acquired" in p["message"] for p in parsed)


@pytest.mark.e2e
def test_a_token_parameter_is_hidden_however_its_name_is_encoded(tmp_path: Path) -> None:
    """Starlette reads `?%74oken=` as the socket's `token` (a real access token opens the socket so),
    and only the literal `token=` was hidden: the access token was written out in full."""
    env = environment("sqlite", f"sqlite:///{tmp_path / 'ugc.sqlite3'}", tmp_path) | {"UGC_ACCESS_LOG": "true"}
    with start_server(env, log_dir=tmp_path) as server:
        with connect(f"ws://127.0.0.1:{server.port}/ws/notifications/?%74oken=SOCKET-SECRET") as socket:
            with pytest.raises(ConnectionClosed):
                socket.recv(timeout=10)
        assert (
            httpx.get(f"{server.url}/verify-email/?tok%65n=LINK-SECRET&access_%74oken=OTHER-SECRET").status_code == 200
        )
        log_path = server.log_path
    text = log_path.read_text()
    assert "SECRET" not in text and "?%74oken=***" in text and "?tok%65n=***&access_%74oken=***" in text
