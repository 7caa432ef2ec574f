"""An erasure reaches a running server at once (both backends): `ugc users erase`, in a process of its
own, shuts the person's access token out of a real `ugc serve` that keeps their standing, and closes
their open sockets with 4401, well within the 30 s a standing is kept — no clock moved.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
import psycopg
import pytest
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.routes.ws import EXPIRY_CHECK
from api.services import Services
from commands.accounts import AccountCommands
from commands.standing import Standings
from readmodels import notifications
from tests.backends import POSTGRES_URL, environment, fresh_database
from tests.conftest import Api
from tests.servers import Server, run_ugc, start_server
from ugc.clock import SystemClock
from ugc.config import Settings
from ugc.platform import erasures, refresh_families
from ugc.platform.database import Database
from ugc.platform.refresh_families import FamilyToken
from ugc.platform.store import EventStores

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REACH = 2.0  # seconds after the CLI returns within which every process must have heard


@dataclass
class Live:
    server: Server
    api: Api
    env: dict[str, str]

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}{path}"

    def erase(self, username: str) -> None:
        done = run_ugc(self.env, "users", "erase", username, "--yes")
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def live(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("erasure-reach")
    with fresh_database(backend, tmp) as url:
        env = environment(backend, url, tmp)
        with (
            start_server(env, log_dir=tmp / "logs") as server,
            httpx.Client(base_url=server.url, timeout=20) as http,
        ):
            yield Live(server, Api(http, Settings.from_env(env | {"UGC_PUBLIC_URL": server.url})), env)  # type: ignore[arg-type]
        assert "Traceback" not in server.log_tail(10**7), server.log_tail()


def refused_within(answer: Callable[[], httpx.Response | httpx2.Response], seconds: float) -> float:
    """How long until `answer()` was 401 (asked every 20 ms); fails if it never was within `seconds`."""
    started = time.monotonic()
    while (status := answer().status_code) != 401:
        assert status == 200, status
        assert time.monotonic() - started < seconds, f"still served {seconds} s after the erasure"
        time.sleep(0.02)
    return time.monotonic() - started


def test_an_erased_persons_token_is_refused_by_a_running_server_at_once(live: Live) -> None:
    api = live.api
    person, boris = api.verified_user(), api.verified_user()
    chat = live.api.conversation(boris, person)
    # Warm the server's standing of the person: from now on it would trust their token for 30 s.
    assert api.client.get("/api/v1/notifications/", headers=person["headers"]).status_code == 200
    sent = api.client.post(
        f"/api/v1/conversations/{chat}/messages/", headers=person["headers"], json={"message": "ещё здесь"}
    )
    assert sent.status_code == 201, sent.text

    live.erase(person["username"])

    refused_within(lambda: api.client.get("/api/v1/notifications/", headers=person["headers"]), REACH)
    for answer in (
        api.client.get("/api/v1/notifications/", headers=person["headers"]),
        api.client.get("/api/v1/conversations/", headers=person["headers"]),
        api.client.post(
            f"/api/v1/conversations/{chat}/messages/", headers=person["headers"], json={"message": "после"}
        ),
    ):
        assert (answer.status_code, answer.json()) == (401, {"detail": "Токен недействителен или просрочен."})
    # Nobody else's standing is touched.
    assert api.client.get("/api/v1/notifications/", headers=boris["headers"]).status_code == 200


GONE = {"error": "Аккаунт собеседника удален: отправка сообщений невозможна."}


def test_no_message_goes_to_an_erased_person_over_rest_or_the_socket_and_the_chat_stays_readable(live: Live) -> None:
    """Nobody would ever read it: the other party's send is refused (409 over REST, an error frame over
    the socket, which stays open), though the server had just seen the person send one."""
    api = live.api
    person, boris = api.verified_user(), api.verified_user()
    chat = live.api.conversation(boris, person)
    path = f"/api/v1/conversations/{chat}/messages/"
    sent = api.client.post(path, headers=person["headers"], json={"message": "ещё здесь"})
    assert sent.status_code == 201, sent.text

    live.erase(person["username"])
    # Heard by the server once the person's own token is refused there.
    refused_within(lambda: api.client.get("/api/v1/notifications/", headers=person["headers"]), REACH)

    answer = api.client.post(path, headers=boris["headers"], json={"message": "ты здесь?"})
    assert (answer.status_code, answer.json()) == (409, GONE)

    async def scenario() -> None:
        async with connect(live.ws(f"/ws/conversations/{chat}/?token={boris['access']}")) as his:
            await his.send('{"message": "ответь"}')
            async with asyncio.timeout(5):
                assert json.loads(await his.recv()) == GONE
            await his.send('{"message": "ответь же"}')  # the socket stays open for the next frame
            async with asyncio.timeout(5):
                assert json.loads(await his.recv()) == GONE

    asyncio.run(scenario())
    # What was said stays readable for the other party, and nothing after the erasure was stored.
    read = api.client.get(path, headers=boris["headers"])
    assert read.status_code == 200 and [m["message"] for m in read.json()["results"]] == ["ещё здесь"]


async def close_code(ws: ClientConnection, timeout: float) -> int | None:
    """The code the server closes `ws` with; None if it is still open after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return None


def test_an_erased_persons_open_sockets_close_4401_at_once(live: Live) -> None:
    api = live.api
    person, boris = api.verified_user(), api.verified_user()
    chat = live.api.conversation(boris, person)
    path = f"/ws/conversations/{chat}/?token="

    async def scenario() -> None:
        async with (
            connect(live.ws(f"/ws/notifications/?token={person['access']}")) as alerts,
            connect(live.ws(path + person["access"])) as theirs,
            connect(live.ws(path + boris["access"])) as his,
        ):
            await asyncio.to_thread(live.erase, person["username"])
            started = time.monotonic()
            codes = await asyncio.gather(close_code(alerts, REACH), close_code(theirs, REACH))
            assert list(codes) == [4401, 4401] and time.monotonic() - started < REACH
            # The other party's socket stays, and answers a send to the erased person with an error frame.
            await his.send('{"message": "ты здесь?"}')
            async with asyncio.timeout(5):
                assert json.loads(await his.recv()) == GONE

    asyncio.run(scenario())


def test_sockets_of_a_person_erased_while_the_listen_was_down_close_4401_once_it_is_back(
    live: Live, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure announced while the server's LISTEN was down goes unheard: once it listens again, the
    server asks the store about the users of its sockets and closes the erased person's at once, not
    at the socket's next look at the standing (EXPIRY_CHECK seconds)."""
    if backend != "postgres":
        pytest.skip("LISTEN is PostgreSQL's; SQLite's marks are read, not heard")
    person, boris = live.api.verified_user(), live.api.verified_user()
    url = live.env["UGC_DATABASE_URL"]
    monkeypatch.setattr(erasures, "announce", lambda *_: None)  # sent while nobody listened
    stores, db = EventStores(url, data_key=live.env["UGC_DATA_KEY"]), Database(url)

    async def scenario() -> None:
        async with (
            connect(live.ws(f"/ws/notifications/?token={person['access']}")) as theirs,
            connect(live.ws(f"/ws/notifications/?token={boris['access']}")) as his,
        ):
            opened = time.monotonic()
            await asyncio.to_thread(AccountCommands(stores, db, SystemClock()).erase, person["username"], "operator")
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                cut = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND query LIKE %s",
                    (urlsplit(url).path.lstrip("/"), "%LISTEN %"),
                ).fetchall()
            assert cut, "the server does not listen"
            assert await close_code(theirs, EXPIRY_CHECK) == 4401
            assert time.monotonic() - opened < EXPIRY_CHECK - 1
            assert await close_code(his, 1.0) is None  # the other user's socket stays

    try:
        asyncio.run(scenario())
    finally:
        stores.close()
        db.close()


def test_a_load_that_read_the_account_before_the_erasure_keeps_nothing(live: Live) -> None:
    """The race the generation guards: a standing read before the erasure, kept after the process
    forgot it, would be trusted for 30 s more. The erasure here comes between the read and the keeping."""
    person = live.api.verified_user()
    stores = EventStores(live.env["UGC_DATABASE_URL"], data_key=live.env["UGC_DATA_KEY"])
    try:
        standings = Standings(stores, SystemClock())
        keys = stores.data_keys
        assert keys is not None
        read = keys.erased  # the load's last read: the tombstones of the person's keys, after the account
        told = threading.Event()

        def read_then_erased(person_id: int) -> bool:
            erased = read(person_id)  # as the keys stood before the erasure
            if not told.is_set():
                told.set()
                live.erase(person["username"])
                standings.forget(person["id"])  # as this process's ErasureWatch hears it
            return erased

        # Its parameter's name is not the method's (`person`, the dict above): mypy's [assignment].
        keys.erased = read_then_erased  # type: ignore[method-assign, assignment]
        loaded = standings.load(person["id"])
        assert loaded is not None and told.is_set()  # it answers what it read, but keeps nothing
        assert standings.known(person["id"]) is None
        assert standings.load(person["id"]) is None  # read again: erased
    finally:
        stores.close()


def test_a_socket_opened_in_the_instant_of_the_erasure_is_closed_4401_at_once(
    api: Api, settings: Settings, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the socket's token is checked, the erasure is committed and heard (the hub closes the
    person's sockets, this one not among them yet), then the socket joins the hub. It must not stay
    open until its next look at the standing, EXPIRY_CHECK seconds later."""
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    person = api.verified_user()
    assert api.client.get("/api/v1/notifications/", headers=person["headers"]).status_code == 200
    last_seq = notifications.last_seq

    def erased_meanwhile(*args: Any) -> int:  # between the socket's token check and its joining the hub
        done = run_ugc(
            environment(backend, settings.database_url, settings.var_dir), "users", "erase", person["username"], "--yes"
        )
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + REACH
        while services.standings.known(person["id"]) is not None:  # heard here: the hub closed what it had
            assert time.monotonic() < deadline, "the erasure was not heard"
            time.sleep(0.01)
        time.sleep(0.1)
        return last_seq(*args)

    monkeypatch.setattr(notifications, "last_seq", erased_meanwhile)
    with api.client.websocket_connect(f"/ws/notifications/?token={person['access']}") as socket:
        monkeypatch.setattr(notifications, "last_seq", last_seq)
        opened = time.monotonic()
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()
    assert closed.value.code == 4401
    assert time.monotonic() - opened < EXPIRY_CHECK / 2


def test_a_sign_in_the_erasure_overtook_starts_no_session(
    api: Api, settings: Settings, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the password is checked, the erasure is committed (its revocation of the person's
    refresh tokens done), then the sign-in stores its session. Neither the sign-in nor a refresh with
    what it would have answered may work once `ugc users erase` returned, though this process still
    keeps the person's standing (it hears of erasures only at its next look)."""
    person = api.verified_user()
    assert api.client.post("/api/auth/token/refresh/", json={"refresh": person["refresh"]}).status_code == 200
    start_family = refresh_families.start_family
    issued: list[str] = []

    def erased_meanwhile(db: Database, family: str, user_id: int, token: FamilyToken) -> None:
        done = run_ugc(
            environment(backend, settings.database_url, settings.var_dir), "users", "erase", person["username"], "--yes"
        )
        assert done.returncode == 0, done.stderr
        start_family(db, family, user_id, token)
        issued.append(family)

    monkeypatch.setattr(refresh_families, "start_family", erased_meanwhile)
    credentials = {"username": person["username"], "password": person["password"]}
    answer = api.client.post("/api/auth/token/", json=credentials)
    monkeypatch.setattr(refresh_families, "start_family", start_family)
    assert issued, "the sign-in did not get as far as its session"
    assert (answer.status_code, answer.json()) == (401, {"detail": "Неверное имя пользователя или пароль."})
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    with services.db.read() as cur:
        live = cur.execute(
            "SELECT COUNT(*) AS n FROM refresh_families WHERE user_id = %s AND revoked_at IS NULL", (person["id"],)
        ).fetchone()
    assert live is not None and live["n"] == 0
