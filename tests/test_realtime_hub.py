"""The hub on its own (bounded queues, closing everyone when the broker goes), and a push the
server cannot render, which closes its socket with 1011 (in process: no real fault to provoke)."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.websockets import WebSocketDisconnect

from api.realtime import SERVICE_RESTART, UNAUTHORIZED, Hub, TooManySockets
from readmodels import notifications
from tests.conftest import Api
from ugc.platform.push import RESYNC, Push, conversation_channel, user_channel


def push(to: str, seq: int = 0) -> Push:
    return Push(kind="notification", to=to, row={"id": seq}, seq=seq)


def test_a_full_queue_is_dropped_for_a_resync_of_its_own_connection_only() -> None:
    """Pushes come faster than one client takes them: its queue is dropped for one RESYNC (it reads
    them from the store when it is ready), memory stays bounded, and nobody else is touched."""

    async def scenario() -> None:
        hub = Hub(asyncio.get_running_loop(), queue_size=3)
        slow, fast, other = (
            hub.subscribe(user_channel(1), 1),
            hub.subscribe(user_channel(1), 1),
            hub.subscribe(user_channel(2), 2),
        )
        for seq in range(1, 4):
            hub.deliver([push(user_channel(1), seq)])
            fast.queue.get_nowait()
        assert slow.queue.qsize() == 3
        hub.deliver([push(user_channel(1), 4)])
        assert slow.close_code is None and [slow.queue.get_nowait()] == [RESYNC] and slow.queue.empty()
        assert fast.close_code is None and fast.queue.get_nowait().seq == 4
        hub.deliver([push(user_channel(1), seq) for seq in range(5, 10)])
        assert slow.queue.qsize() <= 3 and RESYNC in list(slow.queue._queue)  # type: ignore[attr-defined]
        assert other.queue.empty()

    asyncio.run(scenario())


def test_losing_the_broker_closes_every_connection_until_it_is_back() -> None:
    async def scenario() -> None:
        hub = Hub(asyncio.get_running_loop())
        subscriptions = [hub.subscribe(user_channel(1), 1), hub.subscribe(conversation_channel(7), 1)]
        hub.interrupt(SERVICE_RESTART)
        assert not hub.available
        assert [s.close_code for s in subscriptions] == [SERVICE_RESTART, SERVICE_RESTART]
        for subscription in subscriptions:
            hub.unsubscribe(subscription)
        assert hub.connections == 0
        hub.resume()
        assert hub.available

    asyncio.run(scenario())


def test_closing_a_user_closes_their_connections_on_every_channel_and_nobody_elses() -> None:
    """An erased person's sockets, told by the erasure (ugc/wiring.py `server_erasures_heard`)."""

    async def scenario() -> None:
        hub = Hub(asyncio.get_running_loop())
        theirs = [hub.subscribe(user_channel(1), 1), hub.subscribe(conversation_channel(7), 1)]
        others = [hub.subscribe(user_channel(2), 2), hub.subscribe(conversation_channel(7), 2)]
        hub.close_user(1, UNAUTHORIZED)
        hub.close_user(3, UNAUTHORIZED)  # nobody's: nothing happens
        assert [s.close_code for s in theirs] == [UNAUTHORIZED, UNAUTHORIZED]
        assert [s.close_code for s in others] == [None, None]

    asyncio.run(scenario())


def test_a_user_holds_at_most_max_per_user_subscriptions_in_a_process() -> None:
    async def scenario() -> None:
        hub = Hub(asyncio.get_running_loop(), max_per_user=2)
        first, _ = hub.subscribe(user_channel(1), 1), hub.subscribe(conversation_channel(7), 1)
        with pytest.raises(TooManySockets):
            hub.subscribe(user_channel(1), 1)
        hub.subscribe(conversation_channel(7), 2)  # another user's count is their own
        hub.unsubscribe(first)
        hub.unsubscribe(first)  # a second unsubscribe gives nothing back twice
        hub.subscribe(user_channel(1), 1)
        with pytest.raises(TooManySockets):
            hub.subscribe(user_channel(1), 1)
        assert hub.connections == 3

    asyncio.run(scenario())


def test_pushes_from_another_thread_reach_the_loop() -> None:
    async def scenario() -> None:
        hub = Hub(asyncio.get_running_loop())
        subscription = hub.subscribe(conversation_channel(3), 1)
        await asyncio.to_thread(hub.publish, [push(conversation_channel(3), 1), push(conversation_channel(4), 2)])
        assert (await asyncio.wait_for(subscription.queue.get(), 1)).seq == 1
        assert subscription.queue.empty()

    asyncio.run(scenario())


def test_a_push_the_server_cannot_render_closes_with_1011(api: Api) -> None:
    anna = api.user()
    hub: Hub = api.client.app.state.services.realtime  # type: ignore[attr-defined]
    with api.client.websocket_connect(f"/ws/notifications/?token={anna['access']}") as ws:
        assert hub.connections == 1  # subscribed before the socket was accepted
        hub.publish([Push(kind="notification", to=user_channel(anna["id"]), row={}, seq=1)])
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1011


def test_a_push_without_its_place_is_read_from_the_store(api: Api) -> None:
    """A process of an older version (a rolling deploy) pushes with seq 0: the socket reads what was
    stored after the last row it sent, as for a resync, and never sends the push's row itself."""
    anna = api.user()
    services = api.client.app.state.services  # type: ignore[attr-defined]
    with api.client.websocket_connect(f"/ws/notifications/?token={anna['access']}") as ws:
        with services.db.transaction(write=True) as cur:  # what the older process stored
            cur.execute(
                "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, is_read, "
                "created_at) VALUES (%s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM notification_seqs), %s, 'orders', "
                "9999, 'new_order', 'У вас новый заказ!', %s, %s, %s)",
                (9999 * 8 + 1, anna["id"], '{"order_id": 1}', False, "2026-03-01T12:00:00+00:00"),
            )
        services.realtime.publish(
            [Push(kind="notification", to=user_channel(anna["id"]), row={"id": "not from the store"}, seq=0)]
        )
        stored = json.loads(ws.receive_text())
        assert stored["id"] == 9999 * 8 + 1
        # A push in its place comes next as it is; once it is sent the socket waits, idle, for the next.
        pushed = stored | {"id": 10_000 * 8 + 1}
        seq = notifications.seq_of(services.db, anna["id"], stored["id"])
        assert seq is not None
        services.realtime.publish([Push(kind="notification", to=user_channel(anna["id"]), row=pushed, seq=seq + 1)])
        assert json.loads(ws.receive_text())["id"] == pushed["id"]
        # Ended by the server (a push it cannot render, as above): leaving a TestClient socket open
        # races the session's own teardown with the client's cancel (a CancelledError in its exit).
        services.realtime.publish([Push(kind="notification", to=user_channel(anna["id"]), row={}, seq=seq + 2)])
        with pytest.raises(WebSocketDisconnect):
            ws.receive_text()
