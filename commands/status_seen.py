"""The status each order had, as this process knows it, when each command on it arrived.

An order's command is meant for the status its caller saw: of two transitions racing on one order
(accept and cancel on a pending one), exactly one wins and the other answers 409, even where the rule
book would allow the second after the first (cancelling in progress).

Within a process the group commit never clashes: a second command on an order waits for the first
one's group and is decided on its outcome. So each command takes, when it arrives, a `Seen` shared
with every command on that order still under way here; the first decision fills it with the status
it loaded, and a save that goes through starts a new one for the commands arriving after it.

Another process's command is known here only by what it stored. Each arrival keeps its time, and
the order keeps when its status last changed (`Order.status_since`, the deciding process's clock at
its decision): a status that changed after this command arrived was not the one its caller saw. A
change decided before the arrival but saved after it cannot be told apart that way (that process's
decision-to-commit time, milliseconds), nor can hosts whose clocks disagree by more than a request
takes; `If-Match` holds wherever the command lands. Of accept and cancel raced on 60 pending orders
across two servers under load, both won on 20 before arrival times were compared, on 7 and 9 after
(README, "Orders"; a busy event loop registers an arrival late too).

A command arrives when its request does, not when a thread gets to it: under load requests wait for
a blocking thread and then for a group, and one that arrived while another was under way was taken
in only after the other's save, and decided on its new status (both of accept and cancel won on 55
of 60 orders raced at once: tests/test_order_races.py). So the API enters `arriving` on the event
loop before anything else of the request (api/arrival.py), and the command, in its thread, takes the
`Arrival` of that request (`under_way`); a caller with no request (the scheduler, the CLI) arrives
when the command starts.

A request arrives before anyone knows whether its caller has a part in the order, so the status
seen is the last thing a decision looks at (`OrderCommands._change_numbered`): a command of someone
the order does not concern, or of the wrong party, that arrived while the order moved is refused
404 or 403 first, and never learns the new status from a 409 (tests/test_order_races.py).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime


@dataclass(eq=False)
class Seen:
    """The status the order had when the commands holding this arrived; None until one is decided."""

    status: str | None = None


@dataclass(frozen=True, eq=False)
class Arrival:
    """One command's arrival: the `Seen` it shares with the commands under way with it, and when."""

    seen: Seen
    at: datetime


@dataclass(eq=False)
class _UnderWay:
    commands: int
    seen: Seen  # what a command arriving now takes


# Where, on which order and how the command of this context arrived (copied into its thread).
_arrived: contextvars.ContextVar[tuple[SeenStatuses, int, Arrival] | None] = contextvars.ContextVar(
    "orders_arrived", default=None
)


class SeenStatuses:
    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now  # the clock the orders' decisions take their times from
        self._lock = threading.Lock()
        self._orders: dict[int, _UnderWay] = {}  # only orders with commands under way: bounded by them

    @contextmanager
    def arriving(self, order: int) -> Iterator[Arrival]:
        """A command on `order` under way for the block: the status its caller saw, as it is learnt."""
        at = self._now()
        with self._lock:
            under_way = self._orders.setdefault(order, _UnderWay(0, Seen()))
            under_way.commands += 1
            arrival = Arrival(under_way.seen, at)
        token = _arrived.set((self, order, arrival))
        try:
            yield arrival
        finally:
            _arrived.reset(token)
            with self._lock:
                under_way.commands -= 1
                if not under_way.commands:
                    del self._orders[order]

    @contextmanager
    def under_way(self, order: int) -> Iterator[Arrival]:
        """The command on `order` of this context under way for the block: its `Arrival` from where it
        arrived (`arriving`, entered by the caller), or from now if it was not registered before."""
        arrived = _arrived.get()
        if arrived is not None and arrived[:2] == (self, order):
            yield arrived[2]
            return
        with self.arriving(order) as arrival:
            yield arrival

    def saved(self, order: int, status: str) -> None:
        """A command on `order` (under way) was saved: the commands arriving from now on saw `status`."""
        with self._lock:
            self._orders[order].seen = Seen(status)
