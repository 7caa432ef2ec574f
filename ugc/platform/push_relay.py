"""Pushes over Redis pub/sub, so a socket on any server process hears what any process stored.

Two threads per process, so neither the projection runner nor the event loop ever waits on Redis:
- the sender publishes what the runner hands over, in order, retrying while Redis is away (the
  backlog is bounded: past it, pushes are dropped and a "gap" is announced once Redis is back,
  which closes every socket with 1012 so clients replay with `since=`);
- the listener subscribes to the deployment's channel and passes every push to a `Receiver` (the
  API's hub, `api/realtime.py`). When the subscription breaks it has the receiver close every
  socket (1012: pushes may have been missed) and refuse new ones, then resubscribes with backoff.

The projector process (`ugc project`) uses the sender alone, which is why the relay lives in the
platform rather than in the API. The sync client runs in threads because the process's lifespan
(`ugc.wiring.runtime`) is a plain context manager: threads start and are joined there like the
projection runner's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ugc.platform.encoding import dumps
from ugc.platform.push import Push

log = logging.getLogger(__name__)

BACKLOG_BATCHES = 1000
FIRST_SUBSCRIBE_WAIT = 3.0
MAX_BACKOFF = 2.0
LISTEN_WAIT = 0.5  # seconds the listener waits for a message before it looks whether it should stop
_GAP = b'{"gap":true}'


def channel_for(database_url: str) -> str:
    """One channel per deployment (its database), so deployments sharing one Redis never cross."""
    return "ugc:push:" + hashlib.sha256(database_url.encode()).hexdigest()[:16]


def encode(pushes: Sequence[Push]) -> bytes:
    return dumps({"pushes": [{"kind": p.kind, "to": p.to, "row": p.row, "seq": p.seq} for p in pushes]})


def decode(raw: bytes) -> list[Push] | None:
    """The pushes of one message, or None for a gap announcement."""
    body: dict[str, Any] = json.loads(raw)
    if body.get("gap"):
        return None
    return [Push(kind=p["kind"], to=p["to"], row=p["row"], seq=int(p["seq"])) for p in body["pushes"]]


class Receiver(Protocol):
    """Where the listener hands what it hears: this process's sockets (the API's hub).

    The listener's thread calls `call(method, *args)`, which runs the method on the receiver's own
    event loop.
    """

    available: bool  # False while the relay cannot hear the others: new sockets are refused

    def call(self, function: Callable[..., None], *args: Any) -> None: ...

    def deliver(self, pushes: Sequence[Push]) -> None: ...

    def interrupt(self) -> None:
        """Close every socket so its client reconnects and replays what it missed."""

    def resume(self) -> None: ...


class RedisRelay:
    """A `Publisher` for the projection runner and, given a receiver, the listener that feeds it."""

    def __init__(self, url: str, channel: str, hub: Receiver | None = None) -> None:
        self.url = url
        self.channel = channel
        self.hub = hub
        # This process's own channel, on which the sender wakes the listener when the relay stops:
        # the listener waits up to LISTEN_WAIT for a message, and a stop (a restart too) waited that long.
        self._wake = f"{channel}:wake:{uuid.uuid4().hex}"
        self._outgoing: queue.Queue[list[Push] | None] = queue.Queue(BACKLOG_BATCHES)
        self._gap = threading.Event()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._threads: list[threading.Thread] = []
        if hub is not None:
            hub.available = False  # until the listener's subscription is confirmed

    def publish(self, pushes: Sequence[Push]) -> None:
        try:
            self._outgoing.put_nowait(list(pushes))
        except queue.Full:
            if not self._gap.is_set():
                log.warning("Redis backlog full: dropping pushes; sockets will be told to replay")
            self._gap.set()

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._send, name="push-sender", daemon=True)]
        if self.hub is not None:
            self._threads.append(threading.Thread(target=self._listen, name="push-listener", daemon=True))
        for thread in self._threads:
            thread.start()
        if self.hub is not None and self._subscribed.wait(FIRST_SUBSCRIBE_WAIT):
            self.hub.available = True

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._outgoing.put(None, timeout=1)  # after what is queued: the sender flushes it first
        except queue.Full:
            pass
        for thread in self._threads:
            thread.join(timeout=5)

    def _client(self, *, retries: int) -> redis.Redis[bytes]:
        # Our own retry loops decide what a broken connection means; the client retries only a
        # stale pooled connection (once), never for long.
        return redis.Redis.from_url(
            self.url,
            socket_connect_timeout=1,
            socket_timeout=2,
            retry=Retry(NoBackoff(), retries),
            health_check_interval=5,
        )

    def _send(self) -> None:
        client = self._client(retries=1)
        pending: list[Push] | None = None
        delay, failing = 0.1, False
        try:
            while True:
                if pending is None:
                    pending = self._outgoing.get()
                    if pending is None:
                        self._wake_listener(client)
                        break
                try:
                    if self._gap.is_set():
                        client.publish(self.channel, _GAP)
                        self._gap.clear()
                    client.publish(self.channel, encode(pending))
                except (redis.RedisError, OSError) as error:
                    if not failing:
                        log.warning("cannot publish to Redis (%s); retrying", error)
                    failing = True
                    if self._stopping.wait(delay):
                        break
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                if failing:
                    log.info("publishing to Redis again")
                pending, delay, failing = None, 0.1, False
        finally:
            client.close()

    def _wake_listener(self, client: redis.Redis[bytes]) -> None:
        """Have the listener, if any, look at `_stopping` now; if Redis does not take the message,
        the listener sees it after LISTEN_WAIT at most, as it did before."""
        if self.hub is None:
            return
        try:
            client.publish(self._wake, b"")
        except (redis.RedisError, OSError):
            pass

    def _listen(self) -> None:
        assert self.hub is not None
        hub = self.hub
        channel = self.channel.encode()  # a message on `_wake` only ends the wait
        delay = 0.1
        while not self._stopping.is_set():
            client = self._client(retries=0)
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self.channel, self._wake)
                while not self._subscribed.is_set() and not self._stopping.is_set():
                    confirmation = pubsub.get_message(timeout=LISTEN_WAIT)
                    if confirmation is not None and confirmation["type"] == "subscribe":
                        self._subscribed.set()
                hub.call(hub.resume)
                log.info("listening for pushes on Redis channel %s", self.channel)
                delay = 0.1
                while not self._stopping.is_set():
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_WAIT)
                    if message is not None and message["type"] == "message" and message["channel"] == channel:
                        try:
                            pushes = decode(message["data"])
                        except (ValueError, KeyError, TypeError):
                            log.warning("ignoring a malformed message on %s", self.channel)
                            continue
                        if pushes is None:
                            hub.call(hub.interrupt)
                            hub.call(hub.resume)
                        else:
                            hub.call(hub.deliver, pushes)
            except (redis.RedisError, OSError) as error:
                if self._subscribed.is_set():
                    log.warning("lost the Redis subscription (%s); closing sockets, resubscribing", error)
                self._subscribed.clear()
                hub.call(hub.interrupt)
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            finally:
                pubsub.close()
                client.close()


@contextmanager
def relay(redis_url: str, database_url: str, hub: Receiver | None) -> Iterator[RedisRelay]:
    """A started relay (stopped at exit)."""
    started = RedisRelay(redis_url, channel_for(database_url), hub)
    started.start()
    try:
        yield started
    finally:
        started.stop()
