"""The hub: hands pushes to this process's WebSocket connections.

The hub lives on the event loop. Pushes reach it from other threads — the projection runner
(in-process fan-out) or the Redis listener (`ugc/platform/push_relay.py`) — through
`loop.call_soon_threadsafe`. Every connection has a bounded queue: when pushes come faster than
its client takes them (a projection catching up pushes whole batches), the queue is dropped for a
`RESYNC`, and the socket reads what it missed from the store when its client is ready; nothing is
buffered without bound, nobody else slows down, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ugc.config import WS_MAX
from ugc.platform.encoding import dumps
from ugc.platform.push import RESYNC, Push

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
# Seconds between a socket's reads of the store when no broker carries other processes' pushes.
STORE_POLL = 1.0

# Close codes (README, "Realtime").
PROTOCOL_ERROR = 1002  # a frame that breaks the protocol: uvicorn's websockets fails the socket (socket_protocol.py)
MESSAGE_TOO_BIG = 1009  # a frame over uvicorn's `ws_max_size` (ugc/cli/serving.py WS_MAX_FRAME)
INTERNAL_ERROR = 1011  # a push this server failed to send: reconnect (with `since=`)
SERVICE_RESTART = 1012  # the broker went away: reconnect (with `since=`)
TRY_AGAIN_LATER = 1013  # took no frame for UGC_WS_SEND_TIMEOUT, the broker is down, or UGC_WS_MAX reached
BAD_REQUEST = 4400
UNAUTHORIZED = 4401
NOT_FOUND = 4404
TOO_MANY = 4429  # the user holds UGC_WS_MAX_PER_USER sockets on this process already


class TooManySockets(Exception):
    """A user asked for one socket more than a process keeps for them (`UGC_WS_MAX_PER_USER`)."""


class NoRoom(Exception):
    """The process holds as many sockets as it keeps, everyone's together (`UGC_WS_MAX`)."""


class Subscription:
    """One connection's interest in one channel, with the pushes waiting to be sent to it."""

    def __init__(self, to: str, user: int, size: int) -> None:
        self.to = to
        self.user = user
        self.queue: asyncio.Queue[Push] = asyncio.Queue(size)
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    def offer(self, push: Push) -> None:
        if self.close_code is not None:
            return
        try:
            self.queue.put_nowait(push)
        except asyncio.QueueFull:
            # What is queued is stored: the socket reads it (and this push) again from the store.
            log.info("a socket on %s is %d pushes behind; it reads them from the store", self.to, self.queue.qsize())
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    def close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
            self.closed.set()


class Hub:
    """Channels ("user:<id>", "conversation:<id>") to the subscriptions of this process."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        queue_size: int = QUEUE_SIZE,
        max_per_user: int = 32,
        max_sockets: int = WS_MAX,
        brokered: bool = True,
    ) -> None:
        self.loop = loop
        self.queue_size = queue_size
        self.max_per_user = max_per_user
        self.max_sockets = max_sockets
        if not brokered:
            # Only this process's own runner pushes here, and the projections may run in another
            # process (`--workers N`, `ugc project`, a second `ugc serve`, a lease that moved):
            # every socket is told to read the store again every STORE_POLL seconds, so none misses a row.
            loop.call_soon(self._poll)
        self.available = True  # False while the broker (Redis) is unreachable
        self._channels: dict[str, set[Subscription]] = {}
        self._per_user: Counter[int] = Counter()
        self._held = 0  # subscriptions of every user together
        self._checks: set[asyncio.Task[None]] = set()  # `close_gone`'s, kept from the garbage collector

    # From any thread ---------------------------------------------------------------------

    def publish(self, pushes: Sequence[Push]) -> None:
        """The in-process fan-out: the projection runner's pushes, straight to this process's sockets."""
        self.call(self.deliver, list(pushes))

    def close_gone(self, present: Callable[[int], bool]) -> None:
        """Close with 4401 the connections of every user here whom `present` (blocking: asked on a
        thread) finds gone: erasures may have gone unheard (a LISTEN that was down)."""
        self.call(self._check_users, present)

    def call(self, function: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:
            # The loop is closed: the process is stopping and its sockets are gone.
            log.debug("hub loop closed; dropping %s", function)

    # On the event loop -------------------------------------------------------------------

    def deliver(self, pushes: Sequence[Push]) -> None:
        for push in pushes:
            if push.kind == "resync":
                for members in tuple(self._channels.values()):
                    for subscription in tuple(members):
                        subscription.offer(push)
                continue
            for subscription in tuple(self._channels.get(push.to, ())):
                subscription.offer(push)

    def _poll(self) -> None:
        if self._channels:
            self.deliver([RESYNC])
        self.loop.call_later(STORE_POLL, self._poll)

    def subscribe(self, to: str, user: int) -> Subscription:
        """The user's new subscription to a channel; `TooManySockets` if they hold `max_per_user` here,
        `NoRoom` if everyone together holds `max_sockets`."""
        if self._per_user[user] >= self.max_per_user:
            raise TooManySockets(user)
        if self._held >= self.max_sockets:
            raise NoRoom()
        subscription = Subscription(to, user, self.queue_size)
        self._channels.setdefault(to, set()).add(subscription)
        self._per_user[user] += 1
        self._held += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        members = self._channels.get(subscription.to)
        if members is None or subscription not in members:
            return
        members.discard(subscription)
        if not members:
            del self._channels[subscription.to]
        self._per_user[subscription.user] -= 1
        self._held -= 1
        if not self._per_user[subscription.user]:
            del self._per_user[subscription.user]

    def interrupt(self, code: int = SERVICE_RESTART) -> None:
        """The broker is gone: close every connection so its client reconnects (and replays)."""
        self.available = False
        for members in tuple(self._channels.values()):
            for subscription in tuple(members):
                subscription.close(code)

    def close_user(self, user: int, code: int) -> None:
        """Close every connection of `user` here (an erased person's, with 4401)."""
        if user not in self._per_user:
            return
        for members in tuple(self._channels.values()):
            for subscription in tuple(members):
                if subscription.user == user:
                    subscription.close(code)

    def _check_users(self, present: Callable[[int], bool]) -> None:
        if self._per_user:
            check = self.loop.create_task(self._close_absent(set(self._per_user), present))
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)

    async def _close_absent(self, users: set[int], present: Callable[[int], bool]) -> None:
        try:
            gone = await asyncio.to_thread(lambda: [user for user in users if not present(user)])
        except Exception as error:  # the database is away: each socket looks at its user every 5 s
            log.warning("the users of this process's sockets were not checked (%s)", error)
            return
        for user in gone:
            self.close_user(user, UNAUTHORIZED)

    def resume(self) -> None:
        self.available = True

    @property
    def connections(self) -> int:
        return self._held


def frame(body: dict[str, Any]) -> str:
    """A push as the text of a WebSocket frame: JSON like the REST answers (times ISO UTC)."""
    return dumps(body).decode()
