"""End to end over WebSockets: a real `ugc serve` process, real `websockets` clients.

On SQLite the server fans out in process; on PostgreSQL (with UGC_TEST_REDIS_URL) through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from readmodels.pages import REPLAY_CHUNK
from tests.backends import environment, fresh_database
from tests.conftest import Api, mailed_token
from tests.orders_world import a_deal, act, place
from tests.servers import Server, end_process, free_port, start_projector, start_server, upgraded_socket
from ugc.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FRAME_TIMEOUT = 5.0
# Seconds a socket that got every frame it was owed is watched for one more (a duplicate): a frame the
# server has queued comes within milliseconds.
QUIET = 0.5


@dataclass
class Live:
    server: Server
    api: Api

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}{path}"


@pytest.fixture(scope="module")
def live(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serving(backend, tmp_path_factory.mktemp("realtime")) as started:
        yield started


@contextlib.contextmanager
def serving(backend: str, tmp: Path, **settings: str) -> Iterator[Live]:
    """A server of its own on a fresh database, with these settings (UGC_… variables) besides the tests'."""
    with fresh_database(backend, tmp) as url:
        env = environment(backend, url, tmp) | settings
        with (
            start_server(env, log_dir=tmp / "logs") as server,
            httpx.Client(base_url=server.url, timeout=20) as http,
        ):
            api = Api(http, Settings.from_env(env | {"UGC_PUBLIC_URL": server.url}))  # type: ignore[arg-type]
            yield Live(server, api)  # the public URL as `ugc serve` derives it
        assert "Traceback" not in server.log_tail(10**7), server.log_tail()


async def next_frame(ws: ClientConnection, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    body: dict[str, Any] = json.loads(raw)
    return body


async def close_code(url: str, timeout: float = FRAME_TIMEOUT) -> int | None:
    """Connect and wait for the server to close the socket; the code it closed with."""
    async with connect(url) as ws:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(function, *args, **kwargs)


# --- chat ----------------------------------------------------------------------------------------


def test_chat_between_two_connected_users(live: Live) -> None:
    anna, boris = live.api.verified_user(), live.api.verified_user()
    number = live.api.conversation(anna, boris)
    path = f"/ws/conversations/{number}/?token="

    async def scenario() -> None:
        async with connect(live.ws(path + anna["access"])) as a, connect(live.ws(path + boris["access"])) as b:
            await a.send(json.dumps({"message": "  Привет, Борис!  "}))
            at_boris, at_anna = await next_frame(b), await next_frame(a)
            assert at_boris == at_anna
            assert set(at_boris) == {"id", "sender", "message", "timestamp"}
            assert at_boris["sender"] == {"id": anna["id"], "username": anna["username"], "avatar": None}
            assert at_boris["message"] == "Привет, Борис!" and at_boris["timestamp"].endswith("Z")
            # Stored before it was broadcast: the REST history already has it.
            stored = await in_thread(
                live.api.client.get, f"/api/v1/conversations/{number}/messages/", headers=boris["headers"]
            )
            assert stored.json()["results"][0] == at_boris

            await b.send(json.dumps({"message": "Привет, Анна"}))
            reply = await next_frame(a)
            assert reply == await next_frame(b)
            assert reply["sender"]["id"] == boris["id"] and reply["id"] > at_boris["id"]

            posted = await in_thread(
                live.api.client.post,
                f"/api/v1/conversations/{number}/messages/",
                headers=anna["headers"],
                json={"message": "А это через REST"},
            )
            assert posted.status_code == 201
            assert await next_frame(a) == await next_frame(b) == posted.json()

    asyncio.run(scenario())


def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays(live: Live) -> None:
    anna, boris = live.api.verified_user(), live.api.user()
    number = live.api.conversation(anna, boris)

    async def scenario() -> None:
        async with connect(live.ws(f"/ws/conversations/{number}/?token={anna['access']}")) as a:
            await a.send("не JSON")
            assert await next_frame(a) == {"error": 'Ожидается JSON-объект вида {"message": "текст"}.'}
            for wrong in ([1, 2], {"text": "нет поля message"}, {"message": 5}):
                await a.send(json.dumps(wrong))
                assert "error" in await next_frame(a)
            await a.send(json.dumps({"message": "   "}))
            assert await next_frame(a) == {
                "error": "Ошибка валидации данных.",
                "fields": {"message": ["Сообщение не может быть пустым."]},
            }
            await a.send(json.dumps({"message": "a\u0000b"}))  # PostgreSQL cannot store it: refused, not logged
            assert (await next_frame(a))["fields"] == {"message": ["Текст содержит недопустимые управляющие символы."]}
            await a.send(json.dumps({"message": "я" * 4001}))
            assert (await next_frame(a))["fields"] == {
                "message": ["Убедитесь, что это значение содержит не более 4000 символов."]
            }
            await a.send(json.dumps({"message": "я" * 4000}))
            assert (await next_frame(a))["message"] == "я" * 4000
            await a.send(json.dumps({"message": "я" * 40000}))  # 80 KB: past any message, not read at all
            with pytest.raises(ConnectionClosed) as closed:
                await next_frame(a)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            assert closed.value.rcvd.reason == "Кадр больше 64 КиБ."  # the library's was English

    asyncio.run(scenario())


def test_a_frame_breaking_the_protocol_closes_1002_with_a_russian_reason(live: Live) -> None:
    """A client's frame must be masked (RFC 6455 5.1); an unmasked one fails the socket with 1002, whose
    reason was the library's English ("incorrect masking")."""
    anna, boris = live.api.verified_user(), live.api.user()
    number = live.api.conversation(anna, boris)
    with upgraded_socket(live.server.port, f"/ws/conversations/{number}/?token={anna['access']}") as (raw, frame):
        raw.sendall(b"\x81\x02hi")  # a text frame "hi", unmasked
        while len(frame) < 2 or len(frame) < 2 + (frame[1] & 0x7F):
            received = raw.recv(4096)
            assert received, frame
            frame += received
    assert frame[0] == 0x88, frame  # a close frame
    payload = frame[2 : 2 + (frame[1] & 0x7F)]
    assert int.from_bytes(payload[:2], "big") == 1002
    assert payload[2:].decode() == "Кадр нарушает протокол WebSocket."


def test_an_unverified_users_frame_gets_the_403_frame_until_they_verify(live: Live) -> None:
    unverified, friend = live.api.user(), live.api.verified_user()
    number = live.api.conversation(friend, unverified)

    async def scenario() -> None:
        async with connect(live.ws(f"/ws/conversations/{number}/?token={unverified['access']}")) as ws:
            await ws.send(json.dumps({"message": "Привет"}))
            assert await next_frame(ws) == {"error": "У вас недостаточно прав для выполнения данного действия."}
            token = mailed_token(live.api.settings, unverified["email"])
            verified = await in_thread(live.api.client.post, "/api/auth/verify-email/", json={"token": token})
            assert verified.status_code == 200
            await ws.send(json.dumps({"message": "Теперь можно"}))
            pushed = await next_frame(ws)
            assert pushed["message"] == "Теперь можно" and pushed["sender"]["id"] == unverified["id"]

    asyncio.run(scenario())
    stored = live.api.client.get(f"/api/v1/conversations/{number}/messages/", headers=friend["headers"]).json()
    assert [m["message"] for m in stored["results"]] == ["Теперь можно"]


# --- notifications -------------------------------------------------------------------------------


def test_a_notification_arrives_within_a_second_of_its_command(live: Live) -> None:
    deal = a_deal(live.api)

    async def scenario() -> None:
        async with connect(live.ws(f"/ws/notifications/?token={deal.creator['access']}")) as creator:
            placed = await in_thread(place, live.api, deal)
            answered = time.monotonic()
            pushed = await next_frame(creator, timeout=1.0)
            assert time.monotonic() - answered < 1.0
            assert pushed["type"] == "new_order" and pushed["data"] == {"order_id": placed["id"]}
            assert set(pushed) == {"id", "type", "message", "data", "created_at", "is_read"}
            listed = await in_thread(live.api.client.get, "/api/v1/notifications/", headers=deal.creator["headers"])
            assert listed.json()["results"][0] == pushed

            async with connect(live.ws(f"/ws/notifications/?token={deal.buyer['access']}")) as buyer:
                await in_thread(act, live.api, deal.creator, placed["id"], "accept")
                answered = time.monotonic()
                accepted = await next_frame(buyer, timeout=1.0)
                assert time.monotonic() - answered < 1.0
                assert (
                    accepted["type"] == "order_accepted" and accepted["message"] == "Креатор принял ваш заказ в работу."
                )
            # Nothing of the buyer's reached the creator's socket.
            with pytest.raises(TimeoutError):
                await next_frame(creator, timeout=0.3)

    asyncio.run(scenario())


def test_since_replays_what_was_missed_without_loss_or_duplicates(live: Live) -> None:
    deal = a_deal(live.api)
    creator = deal.creator
    url = live.ws(f"/ws/notifications/?token={creator['access']}")

    async def scenario() -> list[int]:
        received: list[int] = []
        async with connect(url) as first:
            await in_thread(place, live.api, deal)
            received.append((await next_frame(first))["id"])
        for _ in range(3):  # placed while nobody listens
            await in_thread(place, live.api, deal)
        async with connect(f"{url}&since={received[-1]}") as again:
            for _ in range(3):
                received.append((await next_frame(again))["id"])
            # The seam: a live one right after the replay, once.
            await in_thread(place, live.api, deal)
            received.append((await next_frame(again))["id"])
            with pytest.raises(TimeoutError):
                await next_frame(again, timeout=0.3)
        async with connect(f"{url}&since=0") as everything:
            replayed = [(await next_frame(everything))["id"] for _ in range(5)]
            assert replayed == received
        return received

    received = asyncio.run(scenario())
    stored = live.api.client.get("/api/v1/notifications/", headers=creator["headers"]).json()
    assert stored["count"] == 5
    assert [n["id"] for n in reversed(stored["results"])] == received
    assert len(set(received)) == 5


def test_since_with_many_stored_replays_them_all_in_order(live: Live) -> None:
    anna, boris = live.api.verified_user(), live.api.user()
    number = live.api.conversation(anna, boris)
    for n in range(30):
        live.api.client.post(
            f"/api/v1/conversations/{number}/messages/", headers=anna["headers"], json={"message": f"№{n}"}
        )
    stored = live.api.client.get("/api/v1/notifications/", headers=boris["headers"], params={"page_size": 100})
    ids = [n["id"] for n in reversed(stored.json()["results"])]
    assert len(ids) == 30

    async def scenario() -> list[int]:
        async with connect(live.ws(f"/ws/notifications/?token={boris['access']}&since={ids[9]}")) as ws:
            return [(await next_frame(ws))["id"] for _ in range(20)]

    assert asyncio.run(scenario()) == ids[10:]


def test_a_resume_from_0_over_several_batches_sends_each_once_in_order_while_new_ones_arrive(live: Live) -> None:
    """More than two replay chunks stored before the socket opens, a client that reads through a
    small buffer (the replay waits on the socket: back-pressure), and more sent while it replays:
    every notification once, in the order stored, the new ones after the old, nothing missing."""
    anna, boris = live.api.verified_user(), live.api.user()
    number = live.api.conversation(anna, boris)
    chat = live.ws(f"/ws/conversations/{number}/?token={anna['access']}")
    before, during = 2 * REPLAY_CHUNK + 100, 80

    async def send(sender: ClientConnection, label: str, count: int) -> None:
        for n in range(count):
            await sender.send(json.dumps({"message": f"{label} {n}"}))
        for _ in range(count):  # each is stored once its echo comes back
            await next_frame(sender, timeout=30)

    async def scenario() -> list[int]:
        async with connect(chat) as sender:
            await send(sender, "до", before)
            url = live.ws(f"/ws/notifications/?token={boris['access']}&since=0")
            async with connect(url, sock=tight_socket(live), max_queue=4, compression=None) as alerts:
                got = [(await next_frame(alerts))["id"]]  # the replay has begun
                arriving = asyncio.create_task(send(sender, "во время", during))
                with contextlib.suppress(TimeoutError):  # one missing: the loop ends, and `got` shows it
                    while len(got) < before + during:
                        got.append((await next_frame(alerts, timeout=3))["id"])
                        if len(got) % 50 == 0:
                            await asyncio.sleep(0.05)  # a slow reader: the server's buffers fill
                    got.append((await next_frame(alerts, timeout=QUIET))["id"])  # one more is one too many
                await arriving
        return got

    got = asyncio.run(scenario())
    stored = [
        n["id"]
        for page in range(1, (before + during) // 100 + 2)
        for n in live.api.client.get(
            "/api/v1/notifications/", headers=boris["headers"], params={"page_size": 100, "page": page}
        ).json()["results"]
    ][::-1]
    assert len(stored) == before + during
    assert got == stored


# --- close codes ---------------------------------------------------------------------------------


def test_every_refusal_has_its_close_code(live: Live) -> None:
    anna, boris, eve = live.api.verified_user(), live.api.user(), live.api.user()
    number = live.api.conversation(anna, boris)
    deal = a_deal(live.api)
    place(live.api, deal)
    theirs = live.api.client.get("/api/v1/notifications/", headers=deal.creator["headers"]).json()["results"][0]["id"]
    chat, alerts = f"/ws/conversations/{number}/", "/ws/notifications/"
    expected = {
        # 4401: no token, a forged one, a refresh token
        f"{chat}": 4401,
        f"{chat}?token=not-a-token": 4401,
        f"{chat}?token={anna['refresh']}": 4401,
        f"{alerts}": 4401,
        f"{alerts}?token={anna['access']}x": 4401,
        f"{alerts}?token={anna['refresh']}": 4401,
        # 4404: no such conversation; a `since=` that is not one of the caller's notifications
        f"/ws/conversations/999999999/?token={anna['access']}": 4404,
        f"{alerts}?token={anna['access']}&since={theirs}": 4404,
        f"{alerts}?token={anna['access']}&since=999999999": 4404,
        # 4404 too: a conversation the caller is not in, as its REST pages answer 404 (4403 told a
        # stranger which conversations exist)
        f"{chat}?token={eve['access']}": 4404,
        # 4400: a `since=` that is not a notification id at all
        f"{alerts}?token={anna['access']}&since=abc": 4400,
        f"{alerts}?token={anna['access']}&since=-1": 4400,
    }

    async def scenario() -> dict[str, int | None]:
        codes = await asyncio.gather(*(close_code(live.ws(path)) for path in expected))
        return dict(zip(expected, codes, strict=True))

    assert asyncio.run(scenario()) == expected


def test_a_refused_sockets_close_frame_says_why_in_russian(live: Live) -> None:
    """A refusal's close frame carried its code alone, with an empty reason (the realtime hunt), where
    every other refusal of the API says what was wrong in Russian: an HTTP error's body, the reason
    of a 1009, 1002 or 1007 close."""
    anna = live.api.verified_user()
    alerts = "/ws/notifications/"
    unauthorized = (4401, "Токен недействителен или просрочен.")
    not_found = (4404, "Нет такого потока, диалога или id из since=.")
    expected = {
        alerts: (4401, "Учетные данные не были предоставлены."),
        f"{alerts}?token={anna['refresh']}": unauthorized,
        f"/ws/conversations/999999999/?token={anna['access']}": not_found,
        f"/ws/nothing/?token={anna['access']}": not_found,
        f"{alerts}?token={anna['access']}&since=999999999": not_found,
        f"{alerts}?token={anna['access']}&since=abc": (4400, "since= должен быть id: целое число от 0."),
        # as a REST query parameter given twice (422): which one the client meant is not for us to guess
        f"{alerts}?token={anna['access']}&since=1&since=2": (
            4400,
            "since: Параметр передан несколько раз; передайте один.",
        ),
    }

    async def closed_as(url: str) -> tuple[int, str] | None:
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
        received = closed.value.rcvd
        return None if received is None else (received.code, received.reason)

    async def scenario() -> dict[str, tuple[int, str] | None]:
        answers = await asyncio.gather(*(closed_as(live.ws(path)) for path in expected))
        return dict(zip(expected, answers, strict=True))

    assert asyncio.run(scenario()) == expected


def test_a_user_past_the_sockets_per_process_is_closed_4429(live: Live) -> None:
    """`UGC_WS_MAX_PER_USER` (32) sockets of one user, of both kinds, on one process; the next is
    refused until one of them closes, and nobody else is counted against it."""
    anna, boris = live.api.verified_user(), live.api.user()
    chat = live.ws(f"/ws/conversations/{live.api.conversation(anna, boris)}/?token={anna['access']}")
    alerts = live.ws(f"/ws/notifications/?token={anna['access']}")

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as held:
            sockets = [await held.enter_async_context(connect(chat if n % 2 else alerts)) for n in range(32)]
            async with connect(alerts) as refused:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(refused.recv(), 2)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                4429,
                "Слишком много соединений этого пользователя.",
            )
            assert await close_code(chat, timeout=2) == 4429
            async with connect(live.ws(f"/ws/notifications/?token={boris['access']}")) as theirs:
                with pytest.raises(TimeoutError):  # admitted: open and waiting for pushes
                    await asyncio.wait_for(theirs.recv(), 0.5)
            await sockets[0].close()
            await asyncio.sleep(0.2)  # the server's side of that close
            async with connect(alerts) as again:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(again.recv(), 0.5)

    asyncio.run(scenario())


def test_a_process_holding_ws_max_sockets_closes_the_next_1013_until_one_closes(backend: str, tmp_path: Path) -> None:
    """`UGC_WS_MAX` sockets on one process, of two users together; the next, anyone's, is closed 1013
    (try again later), and once one of them closes there is room again."""
    with serving(backend, tmp_path, UGC_WS_MAX="3") as live:
        anna, boris = live.api.verified_user(), live.api.user()

        def alerts(who: dict[str, Any]) -> str:
            return live.ws(f"/ws/notifications/?token={who['access']}")

        async def scenario() -> None:
            async with contextlib.AsyncExitStack() as held:
                sockets = [await held.enter_async_context(connect(alerts(who))) for who in (anna, anna, boris)]
                assert await close_code(alerts(boris), timeout=2) == 1013
                assert await close_code(alerts(anna), timeout=2) == 1013
                await sockets[0].close()
                await asyncio.sleep(0.2)  # the server's side of that close
                async with connect(alerts(boris)) as again:
                    with pytest.raises(TimeoutError):  # admitted: open and waiting for pushes
                        await asyncio.wait_for(again.recv(), 0.5)

        asyncio.run(scenario())


def test_an_expired_token_closes_a_live_socket(backend: str, tmp_path: Path) -> None:
    with serving(backend, tmp_path, UGC_ACCESS_TOKEN_TTL="3") as live:
        anna, boris = live.api.verified_user(), live.api.user()
        number = live.api.conversation(anna, boris)

        async def scenario() -> tuple[int | None, int | None, float]:
            opened = time.monotonic()
            chat, alerts = await asyncio.gather(
                close_code(live.ws(f"/ws/conversations/{number}/?token={anna['access']}"), timeout=10),
                close_code(live.ws(f"/ws/notifications/?token={boris['access']}"), timeout=10),
            )
            return chat, alerts, time.monotonic() - opened

        chat, alerts, lasted = asyncio.run(scenario())
        assert (chat, alerts) == (4401, 4401)
        assert 0.5 < lasted < 6.0


def test_a_consumer_that_falls_behind_gets_every_message_once_without_stalling_others(live: Live) -> None:
    """Boris's client reads nothing while Anna sends 6 MB: his queue overflows (dropped for a resync,
    so memory stays bounded) while Anna's socket keeps pace; once he reads, he gets every message,
    once each, in the order they were stored."""
    anna, boris = live.api.verified_user(), live.api.user()
    number = live.api.conversation(anna, boris)
    path = f"/ws/conversations/{number}/?token="
    text = "😀" * 4000  # 16 KB a frame: the socket's buffers fill after a few hundred

    async def scenario() -> tuple[int, list[int]]:
        async with (
            connect(live.ws(path + boris["access"]), sock=tight_socket(live), max_queue=4, compression=None) as slow,
            connect(live.ws(path + anna["access"]), compression=None) as fast,
        ):
            sent = 0
            while "pushes behind; it reads them from the store" not in live.server.log_tail(10**6):
                assert sent < 2000, "the slow socket's queue never overflowed"
                for _ in range(25):
                    await fast.send(json.dumps({"message": text}))
                for _ in range(25):  # the fast client keeps pace with what it sends
                    assert (await next_frame(fast, timeout=10))["message"] == text
                sent += 25
            got: list[int] = []
            with contextlib.suppress(TimeoutError):  # one missing: the loop ends, and `got` shows it
                while len(got) < sent:
                    got.append(json.loads(await asyncio.wait_for(slow.recv(), 3))["id"])
                got.append(json.loads(await asyncio.wait_for(slow.recv(), QUIET))["id"])  # one too many
            return sent, got

    sent, got = asyncio.run(scenario())
    stored = [
        message["id"]
        for page in range(1, sent // 100 + 2)
        for message in live.api.client.get(
            f"/api/v1/conversations/{number}/messages/",
            headers=boris["headers"],
            params={"page_size": 100, "page": page},
        ).json()["results"]
    ]
    assert got == stored[::-1] and len(got) == sent


def test_a_consumer_that_reads_nothing_is_let_go_after_the_send_timeout(backend: str, tmp_path: Path) -> None:
    with serving(backend, tmp_path, UGC_WS_SEND_TIMEOUT="2") as live:
        anna, boris = live.api.verified_user(), live.api.user()
        path = f"/ws/conversations/{live.api.conversation(anna, boris)}/?token="
        text = "😀" * 4000

        async def scenario() -> None:
            async with (
                connect(
                    live.ws(path + boris["access"]), sock=tight_socket(live), max_queue=4, compression=None
                ) as slow,
                connect(live.ws(path + anna["access"]), compression=None) as fast,
            ):
                deadline = time.monotonic() + 60
                while "its client took no frame for 2 s" not in live.server.log_tail(10**6):
                    assert time.monotonic() < deadline, live.server.log_tail()
                    await fast.send(json.dumps({"message": text}))
                    assert (await next_frame(fast, timeout=10))["message"] == text
                with pytest.raises(ConnectionClosed):  # what was buffered, then the end
                    while True:
                        await asyncio.wait_for(slow.recv(), 15)
                await fast.send(json.dumps({"message": "Ещё здесь"}))
                assert (await next_frame(fast))["message"] == "Ещё здесь"

        asyncio.run(scenario())


def test_a_consumer_that_reads_nothing_loses_its_connection_after_the_peer_timeout(
    backend: str, tmp_path: Path
) -> None:
    """The kernel drops the connection once its peer has acknowledged nothing for UGC_PEER_TIMEOUT.
    Before, it stayed for as long as the client liked, holding the server's buffers (~2.8 MB): a
    close frame cannot leave, and closing waits for a flush that never comes."""
    with serving(backend, tmp_path, UGC_PEER_TIMEOUT="2") as live:
        anna, boris = live.api.verified_user(), live.api.user()
        path = f"/ws/conversations/{live.api.conversation(anna, boris)}/?token="
        text = "😀" * 4000
        tight = tight_socket(live)
        client_port = tight.getsockname()[1]

        async def scenario() -> None:
            async with (
                # It never pings either: a client whose own keepalive gives up would close the connection itself.
                # Nor does it wait, on leaving, for an answer to its close frame: the server's end is gone by
                # then (what the test waits for), so the default close_timeout of 10 s ran out every time.
                connect(
                    live.ws(path + boris["access"]),
                    sock=tight,
                    max_queue=1,
                    compression=None,
                    ping_interval=None,
                    close_timeout=0,
                ),
                connect(live.ws(path + anna["access"]), compression=None) as fast,
            ):
                assert server_side_open(live.server.port, client_port)
                deadline = time.monotonic() + 60
                while server_side_open(live.server.port, client_port):
                    assert time.monotonic() < deadline, "the server still holds the connection"
                    await fast.send(json.dumps({"message": text}))
                    await next_frame(fast, timeout=10)

        with contextlib.suppress(ConnectionClosed, OSError):
            asyncio.run(scenario())


# Bytes a client that reads nothing gets to send once the server reads no more: what the kernels' buffers
# between the two take (here up to ~40 MB, the receiving side's autotuned up to 32 MiB). A server that
# kept reading took 12-13 MB a second, for as long as the client went on.
BUFFERS_BETWEEN = 128 * 2**20


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client's frame (masked, up to 125 bytes of payload; `fin`: a message's last) as it goes on the wire."""
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def sent_until_blocked(raw: socket.socket, chunk: bytes) -> int:
    """Send `chunk` again and again until a send stalls for 5 s or BUFFERS_BETWEEN is sent; the bytes sent."""
    raw.settimeout(5)
    sent = 0
    with contextlib.suppress(TimeoutError):
        while sent < BUFFERS_BETWEEN:
            raw.sendall(chunk)
            sent += len(chunk)
    return sent


def test_a_client_that_pings_and_reads_nothing_holds_no_more_of_the_servers_memory(live: Live) -> None:
    """A client that sends pings and never reads: the server answered each with a pong into a buffer
    that grew without bound, 12 MB a second, ~1.5 GB a connection by UGC_PEER_TIMEOUT (the realtime
    hunt: 263 MB in 20 s, one socket). It now reads nothing more while what it writes cannot leave, as
    TCP itself does: the client's sends stall once the buffers between fill, and others are served."""
    anna, boris = live.api.verified_user(), live.api.user()
    alerts = f"/ws/notifications/?token={anna['access']}"
    with upgraded_socket(live.server.port, alerts, receive_buffer=4096) as (raw, _):
        assert sent_until_blocked(raw, masked(0x9, b"p" * 125) * 512) < BUFFERS_BETWEEN
        number = live.api.conversation(anna, boris)  # the server serves everyone else meanwhile

        async def chat() -> None:
            async with connect(live.ws(f"/ws/conversations/{number}/?token={anna['access']}")) as ws:
                await ws.send(json.dumps({"message": "Всё ещё здесь"}))
                assert (await next_frame(ws))["message"] == "Всё ещё здесь"

        asyncio.run(chat())


def test_a_message_of_empty_pieces_without_end_holds_none_of_the_servers_memory(live: Live) -> None:
    """A text message begun and continued by empty fragments that never end it: uvicorn kept every
    piece in a list, for as long as the client sent (the realtime hunt: +23 MB for 17 MB sent in
    15 s), as the 64 KiB limit counts a message's bytes and an empty piece has none. An empty piece
    is now nothing to keep: past what its buffers take at first, the server's memory stays put."""
    anna = live.api.user()
    alerts = f"/ws/notifications/?token={anna['access']}"
    pieces = masked(0x0, b"", fin=False) * 100_000
    with upgraded_socket(live.server.port, alerts) as (raw, received):
        raw.settimeout(60)  # the server reads ~1 MB of such frames a second
        raw.sendall(masked(0x1, b"", fin=False))
        resident = []
        for ping in (b"first", b"again"):
            for _ in range(10):  # a million pieces, 6 MB: ~13 MB of the list's before
                raw.sendall(pieces)
            raw.sendall(masked(0x9, ping))  # a ping may come between pieces: its pong says they were all read
            while bytes([0x8A, len(ping)]) + ping not in received:
                chunk = raw.recv(4096)
                assert chunk, received
                received += chunk
            resident.append(resident_bytes(live.server.process.pid))
        assert resident[1] - resident[0] < 3 * 2**20


def resident_bytes(pid: int) -> int:
    """The resident memory of process `pid`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the connection from `client_port` is still in the kernel's table."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
            return True
    return False


def test_without_a_broker_a_socket_reads_what_another_process_stored(backend: str, tmp_path: Path) -> None:
    """No UGC_REDIS_URL, and the projections in a `ugc project` beside `ugc serve`: the projector's
    pushes reach only its own process, so the server's sockets read the store instead (every
    second). Before, they stayed silent for good while REST listed every notification."""
    with fresh_database(backend, tmp_path) as url:
        port = free_port()
        env = environment(backend, url, tmp_path) | {
            "UGC_PROJECTIONS": "external",
            "UGC_PUBLIC_URL": f"http://127.0.0.1:{port}",  # the projector's verification mails link to it
        }
        env.pop("UGC_REDIS_URL", None)
        projector = start_projector(env, tmp_path / "project.log")
        try:
            with (
                start_server(env, port, log_dir=tmp_path / "logs") as server,
                httpx.Client(base_url=server.url, timeout=20) as http,
            ):
                live = Live(server, Api(http, Settings.from_env(env)))  # type: ignore[arg-type]
                deal = a_deal(live.api)

                async def scenario() -> None:
                    async with connect(live.ws(f"/ws/notifications/?token={deal.creator['access']}")) as ws:
                        order = await in_thread(place, live.api, deal)
                        pushed = await next_frame(ws, timeout=10)
                        assert (pushed["type"], pushed["data"]) == ("new_order", {"order_id": order["id"]})

                asyncio.run(scenario())
        finally:
            end_process(projector)


def tight_socket(live: Live) -> socket.socket:
    """A connection to the server through a small receive buffer: a client that reads nothing fills it soon."""
    tight = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tight.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tight.connect(("127.0.0.1", live.server.port))
    return tight


def test_twin_marks_read_answer_the_state_they_leave(live: Live) -> None:
    """Two devices of one user mark a conversation, then all notifications, read at once. The mark
    that finds nothing left to move stores nothing, and answered before its twin's was projected:
    unread_count 6 on 5-9 of 20 such answers on PostgreSQL (the chat hunt). It now waits for what
    is stored."""
    anna, boris = live.api.verified_user(), live.api.verified_user()
    chat = live.api.conversation(anna, boris)

    async def scenario() -> list[tuple[int, int]]:
        answers: list[tuple[int, int]] = []
        messages = f"/api/v1/conversations/{chat}/messages/"
        async with httpx.AsyncClient(base_url=live.server.url, timeout=30) as client:
            for round_ in range(10):
                for nth in range(3):
                    sent = await client.post(messages, headers=anna["headers"], json={"message": f"{round_}.{nth}"})
                    assert sent.status_code < 300, sent.text
                for path in (f"/api/v1/conversations/{chat}/mark-as-read/", "/api/v1/notifications/mark-all-read/"):
                    twin = client.post(path, headers=boris["headers"], json={})
                    twins = await asyncio.gather(twin, client.post(path, headers=boris["headers"], json={}))
                    answers += [(twin.status_code, twin.json().get("unread_count")) for twin in twins]
        return answers

    assert set(asyncio.run(scenario())) == {(200, 0)}


def test_a_conversation_socket_resumes_after_the_last_message_it_saw(live: Live) -> None:
    """A client closed with 1012 (Redis away) reads the first page, then reconnects: a message sent
    in between was on neither, as the socket started at the conversation's latest message and took
    no `since=` (the chat hunt). With `since=<the last message id it saw>` it gets it first."""
    anna, boris = live.api.verified_user(), live.api.verified_user()
    chat = live.api.conversation(anna, boris)
    messages = f"/api/v1/conversations/{chat}/messages/"

    def send(text: str) -> int:
        sent = live.api.client.post(messages, headers=anna["headers"], json={"message": text})
        assert sent.status_code == 201, sent.text
        number: int = sent.json()["id"]
        return number

    seen = send("до разрыва")
    page = live.api.client.get(messages, headers=boris["headers"]).json()["results"]
    assert [m["id"] for m in page] == [seen]
    send("в окне")
    path = f"/ws/conversations/{chat}/?token={boris['access']}"

    async def scenario() -> None:
        async with connect(live.ws(f"{path}&since={seen}")) as ws:
            assert (await next_frame(ws))["message"] == "в окне"
            await in_thread(send, "после")
            assert (await next_frame(ws))["message"] == "после"
        async with connect(live.ws(f"{path}&since=0")) as ws:
            replayed = [(await next_frame(ws))["message"] for _ in range(3)]
            assert replayed == ["до разрыва", "в окне", "после"]
        assert await close_code(live.ws(f"{path}&since=abc")) == 4400
        other = live.api.conversation(anna, live.api.verified_user())
        foreign = live.api.client.post(
            f"/api/v1/conversations/{other}/messages/", headers=anna["headers"], json={"message": "не отсюда"}
        ).json()["id"]
        assert await close_code(live.ws(f"{path}&since={foreign}")) == 4404

    asyncio.run(scenario())
