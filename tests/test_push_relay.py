"""The Redis relay on its own (UGC_TEST_REDIS_URL): what one relay publishes, another's listener
hands its receiver, and a stop does not wait out the listener's wait for the next message."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.backends import REDIS_URL
from ugc.platform.push import Push
from ugc.platform.push_relay import LISTEN_WAIT, RedisRelay

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="UGC_TEST_REDIS_URL is not set")


class Receiver:
    """A hub stand-in: what it was handed, and a signal for each delivery."""

    def __init__(self) -> None:
        self.available = False
        self.delivered: list[Push] = []
        self.arrived = threading.Event()

    def call(self, function: Callable[..., None], *args: Any) -> None:
        function(*args)

    def deliver(self, pushes: Sequence[Push]) -> None:
        self.delivered.extend(pushes)
        self.arrived.set()

    def interrupt(self) -> None:
        pass

    def resume(self) -> None:
        pass


def test_a_push_reaches_the_other_relays_receiver_and_a_stop_is_prompt() -> None:
    channel = f"ugc:push:test-{uuid.uuid4().hex[:12]}"
    receiver = Receiver()
    listening, sending = RedisRelay(REDIS_URL, channel, receiver), RedisRelay(REDIS_URL, channel)
    listening.start()
    sending.start()
    try:
        assert receiver.available  # subscribed
        sent = Push(kind="notification", to="user:1", row={"id": 7}, seq=7)
        sending.publish([sent])
        assert receiver.arrived.wait(10)
        assert receiver.delivered == [sent]
    finally:
        sending.stop()
        # Three stops: each waited for the listener's next look at `_stopping`, up to LISTEN_WAIT
        # (~1.5 s in all: a listener that has just subscribed waits the whole of it); woken, a few ms.
        # The bound is twice one wait: room for a busy machine, and still short of the three waits.
        took = 0.0
        for attempt in range(3):
            if attempt:
                listening = RedisRelay(REDIS_URL, channel, Receiver())
                listening.start()
            started = time.monotonic()
            listening.stop()
            took += time.monotonic() - started
            assert not any(thread.is_alive() for thread in listening._threads)
    assert took < 2 * LISTEN_WAIT, took
