"""A stop (SIGTERM, as a deploy sends; SIGHUP, as a closed terminal does) of real `ugc serve` and
`ugc project` processes at work.

uvicorn drains a server's connections before its lifespan ends, so the requests under way finish
while the projections they wait for still run. Here: the sockets' 1012 and what a subscriber resumes
after the restart, a request the drain gives up on, a stop during a worker's start, a handshake
under way, the supervisor of several workers, and a projector's leases at its stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.errors import message
from tests.backends import environment, fresh_database, postgres_available
from tests.conftest import Api
from tests.orders_world import a_deal, place
from tests.servers import Server, end_process, launch_server, run_ugc, start_projector, start_server
from ugc.config import DEFAULT_STOP_GRACE as GRACEFUL_SHUTDOWN
from ugc.config import Settings
from ugc.platform import leases
from ugc.platform.database import Database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PASSWORD = "a-long-password"
SHORT_GRACE = 3  # seconds (UGC_STOP_GRACE)


def verified_user(env: dict[str, str], username: str) -> None:
    made = run_ugc(env, "users", "create", username, "--email", f"{username}@example.com", "--verified", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr


def answer_of(raw: socket.socket) -> bytes:
    """Everything the server sends on `raw` until it closes the connection."""
    received = b""
    raw.settimeout(GRACEFUL_SHUTDOWN + 30)
    while chunk := raw.recv(65536):
        received += chunk
    return received


def test_sockets_are_closed_1012_at_a_stop_and_resume_after_the_restart_missing_nothing(
    backend: str, tmp_path: Path
) -> None:
    """A deploy stops the server under a creator's notification socket and a participant's chat
    socket: each is closed 1012 (service restart), and reconnected to the restarted server with
    `since=` the last id it saw, gets what came meanwhile and what comes next, once each."""
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path)
        with start_server(env, log_dir=tmp_path / "logs") as server, httpx.Client(base_url=server.url) as http:
            api = Api(http, Settings.from_env(env | {"UGC_PUBLIC_URL": server.url}))  # type: ignore[arg-type]
            deal = a_deal(api)
            chat = api.conversation(deal.buyer, deal.creator)
            alerts = f"/ws/notifications/?token={deal.creator['access']}"
            talk = f"/ws/conversations/{chat}/?token={deal.creator['access']}"
            port = server.port

            async def until_stopped() -> tuple[list[int], list[int], list[int | None]]:
                async with (
                    connect(f"ws://127.0.0.1:{port}{alerts}") as notes,
                    connect(f"ws://127.0.0.1:{port}{talk}") as messages,
                ):
                    await asyncio.to_thread(place, api, deal)
                    sent = await asyncio.to_thread(
                        http.post,
                        f"/api/v1/conversations/{chat}/messages/",
                        headers=deal.buyer["headers"],
                        json={"message": "до"},
                    )
                    assert sent.status_code == 201, sent.text
                    seen = [json.loads(await asyncio.wait_for(notes.recv(), 10))["id"]]
                    said = [json.loads(await asyncio.wait_for(messages.recv(), 10))["id"]]
                    server.process.send_signal(signal.SIGTERM)
                    codes = [await closed_with(notes), await closed_with(messages)]
                return seen, said, codes

            seen, said, codes = asyncio.run(until_stopped())
            assert codes == [1012, 1012]
            assert server.process.wait(30) == 0, server.log_tail()
        with (
            start_server(env, port, log_dir=tmp_path / "logs-after") as again,
            httpx.Client(base_url=again.url) as http,
        ):
            api = Api(http, Settings.from_env(env | {"UGC_PUBLIC_URL": again.url}))  # type: ignore[arg-type]
            place(api, deal)  # while the sockets are away
            http.post(
                f"/api/v1/conversations/{chat}/messages/", headers=deal.buyer["headers"], json={"message": "пока нет"}
            )

            async def resumed() -> tuple[list[int], list[int]]:
                async with (
                    connect(f"ws://127.0.0.1:{port}{alerts}&since={seen[-1]}") as notes,
                    connect(f"ws://127.0.0.1:{port}{talk}&since={said[-1]}") as messages,
                ):
                    await asyncio.to_thread(place, api, deal)
                    await asyncio.to_thread(
                        http.post,
                        f"/api/v1/conversations/{chat}/messages/",
                        headers=deal.buyer["headers"],
                        json={"message": "после"},
                    )
                    # What the store holds now (read your writes), less what the sockets saw before the stop.
                    due = len(await asyncio.to_thread(listed)) - len(seen), len(await asyncio.to_thread(stored)) - 1
                    return (
                        [json.loads(await asyncio.wait_for(notes.recv(), 10))["id"] for _ in range(due[0])],
                        [json.loads(await asyncio.wait_for(messages.recv(), 10))["id"] for _ in range(due[1])],
                    )

            def listed() -> list[int]:
                page = http.get("/api/v1/notifications/", headers=deal.creator["headers"], params={"page_size": 100})
                return [row["id"] for row in page.json()["results"]]

            def stored() -> list[int]:
                page = http.get(f"/api/v1/conversations/{chat}/messages/", headers=deal.creator["headers"])
                return [row["id"] for row in page.json()["results"]]

            later, said_later = asyncio.run(resumed())
            assert sorted(seen + later) == sorted(listed()) and len(set(seen + later)) == len(seen + later)
            assert sorted(said + said_later) == sorted(stored()) and len(said + said_later) == 3
        for stopped in (server, again):
            assert "Traceback" not in stopped.log_path.read_text(), stopped.log_tail()


async def closed_with(ws: ClientConnection) -> int | None:
    """Read `ws` until the server closes it; the code it closed with."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_projector_stopped_gives_its_leases_up_at_once(backend: str, number: signal.Signals, tmp_path: Path) -> None:
    """`ugc project` stopped (SIGTERM, or a hangup: its terminal closed) gives its leases up on its way
    out, so the other projector takes them at its next tick rather than 3 s after the last renewal:
    once the process has exited, no lease and no member row names it."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path) | {"UGC_PROJECTIONS": "external"}
        db = Database(url)
        first = start_projector(env, tmp_path / "first.log")
        second = None
        try:
            deadline = time.monotonic() + 60
            while not any(state.holder for state in leases.states(db).values()):
                assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
                time.sleep(0.1)
            second = start_projector(env, tmp_path / "second.log")
            holders: set[str] = set()
            while len(holders) < 2:  # both hold some: the balance has shared them
                assert second.poll() is None and time.monotonic() < deadline, (tmp_path / "second.log").read_text()
                holders = {state.holder for state in leases.states(db).values() if state.holder}
                time.sleep(0.1)
            stopped = next(holder for holder in holders if holder.split("/")[1] == str(first.pid))
            first.send_signal(number)
            assert first.wait(30) == 0, (tmp_path / "first.log").read_text()
            with db.read() as cur:
                rows = cur.execute(
                    "SELECT name FROM leases WHERE holder = %s "
                    "UNION ALL SELECT holder FROM lease_members WHERE holder = %s",
                    (stopped, stopped),
                ).fetchall()
            assert rows == [], rows
            assert "Traceback" not in (tmp_path / "first.log").read_text()
        finally:
            end_process(first)
            if second is not None:
                end_process(second)
            db.close()


def test_a_hangup_stops_a_server_as_sigterm_does(tmp_path: Path) -> None:
    """Closing the terminal of `make run` sends SIGHUP to its process group. Left to its default
    action, it ended `ugc serve` at once: sockets cut without a close frame, requests under way lost,
    the leases left to lapse. Now it drains as at a deploy's SIGTERM: the socket is closed 1012, the
    process ends with status 0 and its leases are given up. (SQLite: no database server is involved.)"""
    with fresh_database("sqlite", tmp_path) as url:
        env = environment("sqlite", url, tmp_path)
        server = launch_server(env, log_dir=tmp_path / "logs", prefix=("setsid",))
        with server, httpx.Client(base_url=server.url) as http:
            server.wait_until_healthy()
            api = Api(http, Settings.from_env(env | {"UGC_PUBLIC_URL": server.url}))  # type: ignore[arg-type]
            deal = a_deal(api)
            alerts = f"ws://127.0.0.1:{server.port}/ws/notifications/?token={deal.creator['access']}"

            async def hung_up() -> tuple[int, str] | None:
                async with connect(alerts) as notes:
                    await asyncio.to_thread(place, api, deal)
                    await asyncio.wait_for(notes.recv(), 10)
                    os.killpg(server.process.pid, signal.SIGHUP)  # as the terminal does
                    code = await closed_with(notes)
                return None if code is None else (code, notes.close_reason or "")

            # The reason says what to do, as every other close's does (it said nothing).
            assert asyncio.run(hung_up()) == (1012, message("socket_restart"))
            assert server.process.wait(30) == 0, server.log_tail()
        assert "Traceback" not in server.log_tail(10**6)
        db = Database(url)
        try:
            assert not any(state.holder for state in leases.states(db).values()), leases.states(db)
        finally:
            db.close()


def test_an_upload_still_streaming_when_the_stop_gives_up_gets_503_and_leaves_nothing(tmp_path: Path) -> None:
    """A mobile client trickling a video in when the deploy's SIGTERM comes: uvicorn waits
    UGC_STOP_GRACE seconds for it (an orchestrator's shorter grace is met: it was 30 s, fixed), then
    cancels the request. That answered uvicorn's text/plain 500 and logged the cancellation's traceback
    at ERROR; it is the API's 503 (try again: the next server takes it), one log line, and no part of
    the file kept. (SQLite only: no database is involved.)"""
    with fresh_database("sqlite", tmp_path, migrated=True) as url:
        # The client's own timeout (reset by every piece) must not end the upload first.
        env = environment("sqlite", url, tmp_path) | {
            "UGC_CLIENT_TIMEOUT": str(GRACEFUL_SHUTDOWN * 4),
            "UGC_STOP_GRACE": str(SHORT_GRACE),
        }
        verified_user(env, "trickler")
        with start_server(env, log_dir=tmp_path / "logs") as server:
            access = httpx.post(f"{server.url}/api/auth/token/", json={"username": "trickler", "password": PASSWORD})
            head = (
                "POST /api/v1/files/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {access.json()['access']}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
                '--b\r\nContent-Disposition: form-data; name="file"; filename="clip.bin"\r\n\r\n'
            )
            stop_trickling = threading.Event()
            with socket.create_connection(("127.0.0.1", server.port)) as raw:
                raw.sendall(head.encode() + b"x" * 10_000)

                def trickle() -> None:
                    while not stop_trickling.wait(1.0):
                        try:
                            raw.sendall(b"x" * 100)
                        except OSError:
                            return

                trickling = threading.Thread(target=trickle)
                trickling.start()
                try:
                    server.process.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                    answer = answer_of(raw)
                    answered_after = time.monotonic() - signalled
                finally:
                    stop_trickling.set()
                    trickling.join()
            assert server.process.wait(30) == 0, server.log_tail()
        assert SHORT_GRACE <= answered_after < SHORT_GRACE + 10, answered_after
        status, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert status == b"HTTP/1.1 503 Service Unavailable", answer
        assert b"retry-after: 1" in headers.lower() and b"connection: close" in headers.lower(), headers
        assert json.loads(body) == {"detail": message("unavailable")}
        log = server.log_path.read_text()
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log
        assert "cut short by the stop: POST /api/v1/files/upload/" in log, log
        assert not [path for path in (tmp_path / "media").rglob("*") if path.is_file()]


def test_a_stop_while_a_worker_starts_ends_the_start(backend: str, tmp_path: Path) -> None:
    """A worker's start can wait long: for the database (up to 2 minutes), for the migration lock
    another process holds (as long as it holds it) when it finds the database migrated last by
    another version's code. uvicorn takes the SIGTERM then only as a wish to stop once started: the
    stop waited for the whole start, projections and leases included, and a deploy's SIGKILL came
    first. Now the start gives up at the signal and the process ends while the lock is still held,
    with no ERROR line."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path)
        db = Database(url)
        try:
            for attempt in range(3):
                server = launch_server(env, log_dir=tmp_path / f"logs-{attempt}")
                with server:
                    logged(server, "UGC Market")  # the banner: `ugc serve` has migrated; its worker comes next
                    with db.exclusive_lock("migrate"):
                        with db.transaction(write=True) as cur:  # as another version's process migrated since
                            cur.execute("UPDATE schema_stamp SET code = 'another version'")
                        logged(server, "Waiting for application startup.")
                        time.sleep(1.0)  # the worker is in its start, at the lock
                        if "Application startup complete." in server.log_tail(10**6):
                            continue  # the worker passed the lock before this test took it: a busy machine
                        server.process.send_signal(signal.SIGTERM)
                        deadline = time.monotonic() + 30  # a bound for a hung run: the lock is never let go
                        while server.process.poll() is None and time.monotonic() < deadline:
                            time.sleep(0.1)
                        assert server.process.poll() == 0, server.log_tail()
                break
            else:
                pytest.fail("the worker started before the lock was taken, three times")
            log = server.log_path.read_text()
            assert " ERROR " not in log and "Traceback" not in log, log
            assert "last migrated by other code" in log, log  # it was at the lock
            assert "stopped while starting" in log and "acquired" not in log, log
        finally:
            db.close()


@pytest.mark.skipif(not postgres_available(), reason="a read held up by a table lock: PostgreSQL")
def test_a_socket_whose_handshake_is_unanswered_when_the_stop_comes_gets_503(tmp_path: Path) -> None:
    """Before it accepts, a socket's handler reads (the token's user, where the stream starts); a stop
    that comes meanwhile made uvicorn answer the handshake 500 "Internal Server Error" in text/plain.
    Clients reconnecting after a deploy meet stopping servers; the handshake is refused 503 with the
    API's body, which says: try again. (The read is held up by a lock the test takes, to widen the
    moment to a second.)"""
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path)
        with start_server(env, log_dir=tmp_path / "logs") as server:
            with psycopg.connect(url) as locker:
                refused = stopped_during_handshake(env, server, locker, "late")
            assert server.process.wait(30) == 0, server.log_tail()
        assert refused is not None, "the handshake was accepted"
        assert refused.response.status_code == 503, refused.response
        assert refused.response.headers["Retry-After"] == "1"
        assert json.loads(refused.response.body) == {"detail": message("unavailable")}
        log = server.log_path.read_text()
        assert "Traceback" not in log and " ERROR " not in log, log


@pytest.mark.skipif(not postgres_available(), reason="a read held up by a table lock: PostgreSQL")
def test_a_socket_handler_still_reading_when_the_stop_gives_up_ends_without_a_traceback(tmp_path: Path) -> None:
    """The handler of a socket refused at the stop may still wait on its read UGC_STOP_GRACE seconds
    later (a table an operator's ALTER TABLE holds, say): uvicorn cancels it then, and the cancellation
    went up as "Exception in ASGI application" with its traceback at ERROR. It ends as an HTTP request
    cut short does: one warning line. (A read waits for a lock UGC_DB_LOCK_TIMEOUT seconds at most, 5
    unless set: set here past the drain, to hold the handler up that long.)"""
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path) | {
            "UGC_STOP_GRACE": str(SHORT_GRACE),
            "UGC_DB_LOCK_TIMEOUT": str(SHORT_GRACE + 60),
        }
        with start_server(env, log_dir=tmp_path / "logs") as server:
            with psycopg.connect(url) as locker:
                assert stopped_during_handshake(env, server, locker, "stuck") is not None
                # The lock outlasts the drain: uvicorn gives the handler up. (Its thread still waits for
                # the read, and the lifespan for its thread: the lock is let go for the process to end.)
                logged(server, "timeout graceful shutdown exceeded", SHORT_GRACE + 30)
            assert server.process.wait(30) == 0, server.log_tail()
        log = server.log_path.read_text()
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log
        assert "cut short by the stop: WebSocket /ws/notifications/" in log, log


def stopped_during_handshake(
    env: dict[str, str], server: Server, locker: psycopg.Connection[Any], username: str
) -> InvalidStatus | None:
    """A notifications socket opened while `locker` holds its table (its handler waits before the
    accept), and the server told to stop a second later; the refusal of the handshake, if refused.
    The lock stays held (`locker`'s transaction) for the caller to let go."""
    verified_user(env, username)
    login = {"username": username, "password": PASSWORD}
    access = httpx.post(f"{server.url}/api/auth/token/", json=login).json()["access"]
    locker.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")

    async def handshake() -> InvalidStatus | None:
        opening = asyncio.create_task(opened(f"ws://127.0.0.1:{server.port}/ws/notifications/?token={access}"))
        await asyncio.sleep(1.0)  # the handler waits for the notifications table
        server.process.send_signal(signal.SIGTERM)
        return await opening

    return asyncio.run(handshake())


async def opened(url: str) -> InvalidStatus | None:
    """Open a socket to `url` and close it; the refusal of its handshake, if it was refused."""
    try:
        async with connect(url, open_timeout=30):
            return None
    except InvalidStatus as refused:
        return refused


def test_a_stopping_server_of_several_workers_refuses_new_connections(tmp_path: Path) -> None:
    """With `--workers N` each worker closes its copy of the listening socket as it begins to drain,
    but uvicorn's supervisor kept its own until every worker had ended (up to GRACEFUL_SHUTDOWN): the
    port went on listening, the kernel completed new connections that nobody would accept, and
    reset them at the end, a proxy answering 502 after waiting. A port that no longer listens
    refuses at once, and the proxy tries its next upstream. (SQLite only: no database is involved.)"""
    with fresh_database("sqlite", tmp_path, migrated=True) as url:
        # A request whose body never comes keeps a worker draining for the whole of the stop.
        env = environment("sqlite", url, tmp_path) | {"UGC_CLIENT_TIMEOUT": str(GRACEFUL_SHUTDOWN * 4)}
        server = launch_server(env, log_dir=tmp_path / "logs", workers=2)
        with server:
            server.wait_until_healthy()
            logged(server, "Application startup complete.", count=2)
            with socket.create_connection(("127.0.0.1", server.port)) as slow:
                slow.sendall(b"POST /api/auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
                time.sleep(0.5)  # the request is under way in a worker
                server.process.send_signal(signal.SIGTERM)
                logged(server, "Shutting down", count=2)  # both workers have closed their copies
                logged(server, "Terminated child process", count=2)  # the supervisor is stopping too
                assert server.process.poll() is None  # a worker is still draining the slow request
                with pytest.raises(httpx.ConnectError):
                    httpx.get(f"{server.url}/healthz", timeout=GRACEFUL_SHUTDOWN * 2)
            assert server.process.wait(GRACEFUL_SHUTDOWN + 30) == 0, server.log_tail()


def logged(server: Server, text: str, timeout: float = 30, *, count: int = 1) -> None:
    """Wait until the running `server` has written `text` to its log (`count` times)."""
    deadline = time.monotonic() + timeout
    while server.log_tail(10**6).count(text) < count:
        assert server.process.poll() is None and time.monotonic() < deadline, server.log_tail()
        time.sleep(0.01)


def test_a_download_still_streaming_when_the_stop_gives_up_is_cut_with_a_warning(tmp_path: Path) -> None:
    """A client fetching a large file too slowly for the drain: uvicorn cancels it UGC_STOP_GRACE seconds
    after the signal, its answer half sent. The cut is planned, yet uvicorn logged it at ERROR ("ASGI
    callable returned without completing response", and "timeout graceful shutdown exceeded"): an ERROR
    here means a fault of the server. It is one warning line naming the request, and the client sees
    the connection end before the Content-Length it was promised. (SQLite only: no database is involved.)"""
    with fresh_database("sqlite", tmp_path, migrated=True) as url:
        env = environment("sqlite", url, tmp_path) | {"UGC_STOP_GRACE": str(SHORT_GRACE)}
        verified_user(env, "fetcher")
        with start_server(env, log_dir=tmp_path / "logs") as server:
            login = {"username": "fetcher", "password": PASSWORD}
            access = httpx.post(f"{server.url}/api/auth/token/", json=login).json()["access"]
            headers = {"Authorization": f"Bearer {access}"}
            size = 20 * 1024 * 1024
            stored = httpx.post(
                f"{server.url}/api/v1/files/upload/", headers=headers, files={"file": ("film.bin", b"\0" * size)}
            )
            assert stored.status_code == 201, stored.text
            path = httpx.URL(stored.json()["url"]).raw_path.decode()
            with socket.socket() as raw:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for it
                raw.connect(("127.0.0.1", server.port))
                raw.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\n\r\n".encode())
                first = raw.recv(4096)
                assert first.startswith(b"HTTP/1.1 200 OK"), first
                server.process.send_signal(signal.SIGTERM)
                logged(server, "timeout graceful shutdown exceeded", SHORT_GRACE + 30)
                received = len(first) + len(answer_of(raw))
            assert server.process.wait(30) == 0, server.log_tail()
        assert received < size
        log = server.log_path.read_text()
        assert " ERROR " not in log and "Traceback" not in log, log
        assert log.count("cut short by the stop: GET /api/v1/files/") == 1, log
