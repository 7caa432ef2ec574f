"""One LISTEN connection per process, shared by every channel the process listens on (PostgreSQL).

Read-your-writes waits (`readmodels/waiting.py`), erasures (`ugc/platform/erasures.py`) and the
projection runner's wake-ups (`projections/runner.py`) each held a connection of their own, and
connections are a budget (README, "Connection budget"). A `Listener` holds one while anyone
subscribes, and its one thread hands each NOTIFY to the subscribers of its channel: a dictionary
lookup, as the read-your-writes wait is on every command's path. The same thread runs LISTEN and
UNLISTEN (psycopg holds the connection's lock while it waits for notifies, so no other thread could),
woken by a socket pair when subscriptions change. A lost connection is made again after
`RETRY_AFTER`, every channel LISTENed again, and each subscriber told, by `listening`, that it may
have missed notifications, as it is told once its own LISTEN first takes effect.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # PostgreSQL's alone: imported where it connects (`ugc.platform.postgres_driver`)
    import psycopg

RETRY_AFTER = 1.0  # seconds between attempts to LISTEN again while the database is away
STOP_WAIT = 2.0  # seconds `close` waits for the thread (it may be connecting to a database away)

log = logging.getLogger(__name__)


def _ignored() -> None:
    return None


@dataclass(eq=False)
class Subscription:
    """One subscriber's interest in one channel; its callbacks run on the listener's thread."""

    channel: str
    notified: Callable[[str], object]  # a NOTIFY's payload
    listening: Callable[[], object]  # the LISTEN took effect (again): what was sent before it went unheard
    lost: Callable[[], object] = _ignored  # the connection is gone: `listening` follows once it is back


class Listener:
    """The process's LISTEN connection, connected while there are subscriptions; its owner `close`s it."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.options = options  # psycopg.connect's keyword arguments (keepalives)
        self._lock = threading.Lock()
        # Replaced whole under `_lock`, read without it by the thread for every NOTIFY.
        self._by_channel: dict[str, tuple[Subscription, ...]] = {}
        self._untold: list[Subscription] = []  # subscribed since the LISTENs last ran: told `listening` next
        self._closing = False
        self._thread: threading.Thread | None = None
        # What wakes the thread (a socket pair's end), made with it: a database that never listens holds none.
        self._wake_out: socket.socket | None = None

    def subscribe(self, subscription: Subscription) -> Subscription:
        with self._lock:
            if self._closing:
                raise RuntimeError("the listener is closed")
            self._by_channel = {
                **self._by_channel,
                subscription.channel: (*self._by_channel.get(subscription.channel, ()), subscription),
            }
            self._untold.append(subscription)
            if self._thread is None:
                wake_in, self._wake_out = socket.socketpair()
                wake_in.setblocking(False)
                self._thread = threading.Thread(target=self._run, args=(wake_in,), name="listener", daemon=True)
                self._thread.start()
        self._wake()
        return subscription

    def cancel(self, subscription: Subscription) -> None:
        """Tell `subscription` nothing more; the channel is UNLISTENed once nobody subscribes to it."""
        with self._lock:
            left = tuple(s for s in self._by_channel.get(subscription.channel, ()) if s is not subscription)
            by_channel = {**self._by_channel, subscription.channel: left}
            if not left:
                del by_channel[subscription.channel]
            self._by_channel = by_channel
            self._untold = [s for s in self._untold if s is not subscription]
        self._wake()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            thread = self._thread
        if thread is None:
            return
        self._wake()
        thread.join(STOP_WAIT)  # left behind if still connecting: it ends, and closes the pair, by itself

    def _wake(self) -> None:
        if self._wake_out is None:
            return
        try:
            self._wake_out.send(b"\0")
        except OSError:  # full (BlockingIOError): a wake-up is pending anyway; closed: nobody to wake
            pass

    def _subscribed(self, wake: socket.socket) -> bool:
        """Wait until anyone subscribes (True) or the listener closes (False)."""
        while True:
            with self._lock:
                if self._closing:
                    return False
                if self._by_channel:
                    return True
            _readable(wake, None)
            _drain(wake)

    def _run(self, wake: socket.socket) -> None:
        from ugc.platform.postgres_driver import psycopg

        try:
            while self._subscribed(wake):
                try:
                    with psycopg.connect(self.url, autocommit=True, **self.options) as conn:
                        self._serve(conn, wake)
                except Exception as error:  # the database is away, or ended the session
                    with self._lock:
                        if self._closing:
                            return
                        subscriptions = [s for subscribed in self._by_channel.values() for s in subscribed]
                    log.warning(
                        "LISTEN connection lost (%s); listening again in %g s", type(error).__name__, RETRY_AFTER
                    )
                    self._tell(s.lost for s in subscriptions)
                    self._pause(wake, RETRY_AFTER)
        finally:
            wake.close()
            if self._wake_out is not None:
                self._wake_out.close()

    def _pause(self, wake: socket.socket, seconds: float) -> None:
        """Sleep `seconds`, or less if the listener closes meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            _readable(wake, left)
            _drain(wake)
            with self._lock:
                if self._closing:
                    return

    def _serve(self, conn: psycopg.Connection[Any], wake: socket.socket) -> None:
        """LISTEN to what is subscribed and dispatch, until nobody subscribes or the listener closes."""
        from psycopg import sql

        listened: set[str] = set()
        readable = _poller(wake, conn.fileno())
        with self._lock:  # a new connection: whatever was sent before it went unheard by everyone
            self._untold = [s for subscribed in self._by_channel.values() for s in subscribed]
        while True:
            with self._lock:
                if self._closing or not self._by_channel:
                    return
                channels, untold, self._untold = set(self._by_channel), self._untold, []
            for channel in sorted(channels - listened):
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            for channel in sorted(listened - channels):
                conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
            listened = channels
            self._tell(s.listening for s in untold)
            while True:
                self._dispatch(conn)  # what arrived meanwhile, the LISTENs' answers included
                if any(descriptor == wake.fileno() for descriptor, _ in readable.poll()):
                    _drain(wake)
                    break

    def _dispatch(self, conn: psycopg.Connection[Any]) -> None:
        for notify in conn.notifies(timeout=0):
            for subscription in self._by_channel.get(notify.channel, ()):
                try:
                    subscription.notified(notify.payload)
                except Exception:  # one subscriber's fault is not the others'
                    log.exception("a NOTIFY on %s was not handled", notify.channel)

    def _tell(self, callbacks: Iterable[Callable[[], object]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a listener's subscriber failed")


def _poller(wake: socket.socket, *others: int) -> select.poll:
    """A poll of `wake` and `others` for reading (or failing). poll, not select: a worker that holds
    over a thousand sockets gives descriptors past select's 1024."""
    poller = select.poll()
    for descriptor in (wake.fileno(), *others):
        poller.register(descriptor, select.POLLIN)
    return poller


def _readable(wake: socket.socket, timeout: float | None) -> None:
    """Wait until `wake` can be read, for `timeout` seconds at most."""
    _poller(wake).poll(None if timeout is None else timeout * 1000)


def _drain(wake: socket.socket) -> None:
    try:
        while wake.recv(4096):
            pass
    except OSError:  # BlockingIOError included: nothing more to read
        pass
