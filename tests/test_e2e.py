"""End to end: real `ugc serve` processes, real HTTP clients, a real SMTP server.

Every test runs on SQLite and, with UGC_TEST_DATABASE_URL set, on PostgreSQL (and Redis).
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import math
import queue
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.backends import environment, fresh_database
from tests.servers import Server, free_port, free_ports, launch_server, run_ugc, start_server, stop_servers

PASSWORD = "correct-horse-battery"
PUBLIC_URL = "https://market.example.test"
MAIL_FROM = "robot@market.example.test"
TOKEN = r"([A-Za-z0-9._-]*[A-Za-z0-9_-])"


# --- a real SMTP server ------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Inbox:
    """The aiosmtpd handler: keeps every message it is given."""

    messages: queue.Queue[Received] = field(default_factory=queue.Queue)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.put(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def wait_for(self, recipient: str, timeout: float = 15.0) -> Received:
        deadline = time.monotonic() + timeout
        seen = []
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                received = self.messages.get(timeout=remaining)
            except queue.Empty:
                break
            if recipient in received.rcpt_tos:
                return received
            seen.append(received.rcpt_tos)
        raise AssertionError(f"no mail to {recipient} within {timeout} s (got mail for {seen})")


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        yield SmtpServer(inbox, controller.port)
    finally:
        controller.stop()


# --- helpers -----------------------------------------------------------------------------------


def new_user() -> dict[str, str]:
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    return {
        "username": name,
        "email": f"{name}@example.com",
        "password": PASSWORD,
        "first_name": "Иван",
        "last_name": "Петров",
    }


def mail_body(mail: Message) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes), mail
    return payload.decode(mail.get_content_charset() or "utf-8")


def bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def register_login_me(register_on: Server, login_on: Server) -> dict[str, Any]:
    user = new_user()
    with (
        httpx.Client(base_url=register_on.url, timeout=20) as first,
        httpx.Client(base_url=login_on.url, timeout=20) as second,
    ):
        registered = first.post("/api/auth/register/", json=user)
        assert registered.status_code == 201, registered.text
        tokens = second.post("/api/auth/token/", json={"username": user["username"], "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        me = second.get("/api/v1/users/me/", headers=bearer(tokens.json()["access"]))
        assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    assert body["id"] == registered.json()["id"]
    assert body["username"] == user["username"] and body["email"] == user["email"]
    return body


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_register_verify_login_me_over_real_http_and_smtp(
    backend: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path) | {
            "UGC_SMTP_URL": smtp_server.url,
            "UGC_PUBLIC_URL": PUBLIC_URL,
            "UGC_MAIL_FROM": MAIL_FROM,
        }
        user = new_user()
        with (
            start_server(env, log_dir=tmp_path / "logs") as server,
            httpx.Client(base_url=server.url, timeout=20) as client,
        ):
            registered = client.post("/api/auth/register/", json=user)
            assert registered.status_code == 201, registered.text
            user_id = registered.json()["id"]
            assert registered.json() == {
                "id": user_id,
                "username": user["username"],
                "email": user["email"],
                "first_name": "Иван",
                "last_name": "Петров",
            }

            received = smtp_server.inbox.wait_for(user["email"])
            assert received.mail_from == MAIL_FROM
            mail = message_from_bytes(received.content)
            assert mail["To"] == user["email"]
            assert mail["From"] == MAIL_FROM
            body = mail_body(mail)
            match = re.search(re.escape(f"{PUBLIC_URL}/verify-email?token=") + TOKEN, body)
            assert match is not None, body
            token = match.group(1)
            # With SMTP configured, nothing goes to the outbox folder.
            assert not list((tmp_path / "outbox").glob("*.eml"))

            before = client.post("/api/auth/token/", json={"username": user["username"], "password": PASSWORD})
            assert before.status_code == 200, before.text
            me = client.get("/api/v1/users/me/", headers=bearer(before.json()["access"]))
            assert me.status_code == 200 and me.json()["is_verified"] is False, me.text

            verified = client.post("/api/auth/verify-email/", json={"token": token})
            assert verified.status_code == 200, verified.text
            assert verified.json() == {"message": "Email успешно подтвержден"}

            tokens = client.post("/api/auth/token/", json={"username": user["username"], "password": PASSWORD})
            assert tokens.status_code == 200, tokens.text
            assert set(tokens.json()) == {"access", "refresh"}
            me = client.get("/api/v1/users/me/", headers=bearer(tokens.json()["access"]))
            assert me.status_code == 200, me.text
            body_me = me.json()
            assert body_me["is_verified"] is True
            assert {
                key: body_me[key] for key in ("id", "username", "email", "first_name", "last_name", "full_name")
            } == {
                "id": user_id,
                "username": user["username"],
                "email": user["email"],
                "first_name": "Иван",
                "last_name": "Петров",
                "full_name": "Иван Петров",
            }
            assert body_me["user_type"] == "Клиент"
            assert body_me["has_creator_profile"] is False and body_me["has_client_profile"] is True

            again = client.post("/api/auth/verify-email/", json={"token": token})
            assert again.status_code == 422, again.text


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_eight_servers_start_at_once_on_an_empty_database(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path)
        with ExitStack() as stack:
            servers: list[Server] = []
            for port in free_ports(8):
                servers.append(stack.enter_context(launch_server(env, port, log_dir=tmp_path / "logs")))
            stack.callback(stop_servers, servers)
            deadline = time.monotonic() + 45
            for server in servers:
                server.wait_until_healthy(deadline=deadline)

            for server in servers:
                with httpx.Client(base_url=server.url, timeout=10) as client:
                    ready = client.get("/readyz")
                assert ready.status_code == 200, f"{ready.status_code} {ready.text}\n{server.log_tail()}"
                assert ready.json()["status"] == "ok"

            me = register_login_me(servers[0], servers[7])
            assert me["is_verified"] is False

            stop_servers(servers)
            # A stop that went as planned exits 0 (uvicorn re-raises the SIGTERM it handled: `ugc` takes it then).
            unclean = [server for server in servers if server.process.returncode != 0]
            assert not unclean, "\n".join(f"{s.process.returncode}: {s.log_tail(1500)}" for s in unclean)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_make_run_style_default_start(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    env = {
        "UGC_VAR_DIR": str(var_dir),
        "UGC_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "UGC_ARGON2_TIME_COST": "1",
        "UGC_ARGON2_MEMORY_KIB": "8192",
    }
    assert not var_dir.exists()
    with (
        start_server(env, log_dir=tmp_path / "logs", cwd=tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        assert (var_dir / "ugc.sqlite3").is_file(), sorted(p.name for p in var_dir.iterdir())
        categories = client.get("/api/v1/categories/")
        assert categories.status_code == 200, categories.text
        assert categories.json()["count"] > 0, categories.text
        assert categories.json()["results"][0]["name"]
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
        assert ready.json()["checks"]["database"] == "ok" and "redis" not in ready.json()["checks"], ready.text
        me = register_login_me(server, server)
        assert me["is_verified"] is False
        assert_keeps_an_idle_connection(server, idle=5.5)
    # Nothing lands outside UGC_VAR_DIR (the logs are ours).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "var"]


def assert_keeps_an_idle_connection(server: Server, idle: float) -> None:
    """A connection left idle longer than a client keeps its own (httpx: 5 s) still serves a request.

    http.client reads each answer whole and never reconnects on its own: a connection the server
    closed while idle fails the second request (RemoteDisconnected)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sockets = []
        for attempt in range(2):
            connection.request("GET", "/healthz/")
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200, (attempt, answer.status, body[:200])
            sockets.append(connection.sock)
            if attempt == 0:
                time.sleep(idle)
        assert sockets[0] is sockets[1] is not None  # one connection served both
    finally:
        connection.close()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_restarted_server_serves_what_it_stored(backend: str, tmp_path: Path) -> None:
    """A fresh process must read the events an earlier process wrote (reference data, users)."""
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path)
        user = new_user()
        with (
            start_server(env, log_dir=tmp_path / "first") as first,
            httpx.Client(base_url=first.url, timeout=20) as client,
        ):
            registered = client.post("/api/auth/register/", json=user)
            assert registered.status_code == 201, registered.text
        with (
            start_server(env, log_dir=tmp_path / "second") as second,
            httpx.Client(base_url=second.url, timeout=20) as client,
        ):
            tokens = client.post("/api/auth/token/", json={"username": user["username"], "password": PASSWORD})
            assert tokens.status_code == 200, tokens.text
            me = client.get("/api/v1/users/me/", headers=bearer(tokens.json()["access"]))
            assert me.status_code == 200, me.text
            assert me.json()["id"] == registered.json()["id"]
            categories = client.get("/api/v1/categories/")
            assert categories.status_code == 200 and categories.json()["count"] > 0, categories.text
            # The second process never wrote a User event: its projections replay none, and a
            # new registration (which reads the name claims) still works.
            again = client.post("/api/auth/register/", json=new_user())
            assert again.status_code == 201, again.text
            taken = client.post("/api/auth/register/", json=user | {"password": "another-password-1"})
            assert taken.status_code == 409, taken.text


@dataclass
class Outcome:
    kind: str
    status: int
    text: str


async def burst(url: str, *, total: int, concurrency: int) -> list[Outcome]:
    """`total` requests from `concurrency` clients, mixing registration, sign-in and /users/me."""
    numbers = itertools.count()
    registered: list[str] = []
    accesses: list[str] = []
    outcomes: list[Outcome] = []

    async def one(client: httpx.AsyncClient, number: int) -> None:
        kind = ("register", "token", "me")[number % 3]
        if kind == "me" and not accesses:
            kind = "token"
        if kind == "token" and not registered:
            kind = "register"
        if kind == "register":
            user = new_user()
            response = await client.post("/api/auth/register/", json=user)
            if response.status_code == 201:
                registered.append(user["username"])
        elif kind == "token":
            username = registered[number % len(registered)]
            response = await client.post("/api/auth/token/", json={"username": username, "password": PASSWORD})
            if response.status_code == 200:
                accesses.append(response.json()["access"])
        else:
            response = await client.get("/api/v1/users/me/", headers=bearer(accesses[number % len(accesses)]))
        outcomes.append(Outcome(kind, response.status_code, response.text[:300]))

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while (number := next(numbers)) < total:
                await one(client, number)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout=90)
    return outcomes


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_server_survives_a_burst_without_5xx(backend: str, tmp_path: Path) -> None:
    with (
        fresh_database(backend, tmp_path) as url,
        start_server(environment(backend, url, tmp_path), log_dir=tmp_path / "logs") as server,
    ):
        started = time.monotonic()
        outcomes = asyncio.run(burst(server.url, total=200, concurrency=16))
        elapsed = time.monotonic() - started

        assert len(outcomes) == 200
        errors = [o for o in outcomes if o.status >= 500]
        assert not errors, (
            f"{len(errors)} of 200 answers were 5xx in {elapsed:.1f} s: {errors[:5]}\n{server.log_tail()}"
        )
        expected = {"register": 201, "token": 200, "me": 200}
        unexpected = [o for o in outcomes if o.status != expected[o.kind]]
        assert not unexpected, f"{len(unexpected)} unexpected answers: {unexpected[:5]}"
        assert {o.kind for o in outcomes} == {"register", "token", "me"}

        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/readyz").status_code == 200
        assert server.process.poll() is None
        assert "Traceback" not in server.log_tail(10**7), server.log_tail()


def test_a_flood_of_registrations_does_not_hold_up_sign_ins(backend: str, tmp_path: Path) -> None:
    """Argon2 at its production cost (~0.1 s a hash). 40 registrations at once queued for the
    hashing inside the threads every command runs on, and a sign-in sent meanwhile waited for most
    of them (17-26 s in the resource hunt's flood). Registrations now take one hashing turn at a
    time, and a sign-in has the other: it answers while the flood is still being worked through.
    Registrations still waiting for their turn after UGC_QUEUE_TIMEOUT are turned away (503, try
    again: tests/test_overload.py), which the flood may well reach."""
    production_cost = {"UGC_ARGON2_TIME_COST": "3", "UGC_ARGON2_MEMORY_KIB": "65536"}
    with (
        fresh_database(backend, tmp_path) as url,
        start_server(environment(backend, url, tmp_path) | production_cost, log_dir=tmp_path / "logs") as server,
    ):

        async def scenario() -> tuple[float, list[float]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

                async def register(name: str) -> float:
                    """When `name` was registered; infinity when it was turned away."""
                    body = {"username": name, "email": f"{name}@example.com", "password": "long-enough-1"}
                    answer = await client.post("/api/auth/register/", json=body)
                    if answer.status_code == 503:
                        assert answer.headers["retry-after"] == "1", answer.headers
                        return math.inf
                    assert answer.status_code == 201, answer.text
                    return time.monotonic()

                assert await register("bob") < math.inf
                flood = [asyncio.create_task(register(f"flood{n}")) for n in range(40)]
                await asyncio.sleep(0.5)
                login = await client.post("/api/auth/token/", json={"username": "bob", "password": "long-enough-1"})
                assert login.status_code == 200, login.text
                return time.monotonic(), await asyncio.gather(*flood)

        signed_in, registered = asyncio.run(scenario())
        assert sum(done < signed_in for done in registered) < len(registered) // 2


def test_a_client_that_hangs_up_mid_upload_is_no_server_error(backend: str, tmp_path: Path) -> None:
    """Nothing failed on our side: an info line, no 500 line, and no part of the file kept."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path)
        user = {"username": "leaver", "password": "a-long-password"}
        made = run_ugc(
            env, "users", "create", "leaver", "--email", "leaver@example.com", "--verified", stdin="a-long-password\n"
        )
        assert made.returncode == 0, made.stderr
        with start_server(env, log_dir=tmp_path / "logs") as server:
            access = httpx.post(f"{server.url}/api/auth/token/", json=user).json()["access"]
            head = (
                "POST /api/v1/files/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {access}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 1000000\r\n\r\n"
                '--b\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
            )
            with socket.create_connection(("127.0.0.1", server.port)) as raw:
                raw.sendall(head.encode() + b"x" * 100_000)
            deadline = time.monotonic() + 30
            while "client left during POST /api/v1/files/upload/" not in server.log_path.read_text():
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.05)
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        log = server.log_path.read_text()
        assert "500 on" not in log and "ClientDisconnect" not in log, log
        assert not [path for path in (tmp_path / "media").rglob("*") if path.is_file()]
