"""The status each order had, as this process knows it, when each command on it arrived.

An order's command is meant for the status its caller saw: of two transitions racing on one order
(accept and cancel on a pending one), exactly one wins and the other answers 409, even where the rule
book would allow the second after the first (cancelling in progress). Across processes the store
says so only when both loaded the order before either saved: the second save clashes and is decided
again on a status that is not the one it was first decided on (`OrderCommands._change_numbered`); one
that loads it after the other's save is decided on the new status (README, "Orders": `If-Match` is
what holds across processes). Within a process the group commit never clashes: a
second command on an order waits for the first one's group and is decided on its outcome. So each
command takes, when it arrives, a `Seen` shared with every command on that order still under way
here; the first decision fills it with the status it loaded, and a save that goes through starts a
new one for the commands arriving after it. A command arriving with none under way takes the status
it is first decided on, as from another process.

A command arrives when its request does, not when a thread gets to it: under load requests wait for
a blocking thread and then for a group, and one that arrived while another was under way was taken
in only after the other's save, and decided on its new status (both of accept and cancel won on 55
of 60 orders raced at once: tests/test_order_races.py). So the API enters `arriving` on the event
loop before anything else of the request (api/arrival.py), and the command, in its thread, takes the
`Seen` of that arrival (`under_way`); a caller with no request (the scheduler, the CLI) arrives
when the command starts.

A request arrives before anyone knows whether its caller has a part in the order, so the status
seen is the last thing a decision looks at (`OrderCommands._change_numbered`): a command of someone
the order does not concern, or of the wrong party, that arrived while the order moved is refused
404 or 403 first, and never learns the new status from a 409 (tests/test_order_races.py).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(eq=False)
class Seen:
    """The status the order had when the commands holding this arrived; None until one is decided."""

    status: str | None = None


@dataclass(eq=False)
class _UnderWay:
    commands: int
    seen: Seen  # what a command arriving now takes


# Where, on which order and with which `Seen` the command of this context arrived (copied into its thread).
_arrived: contextvars.ContextVar[tuple[SeenStatuses, int, Seen] | None] = contextvars.ContextVar(
    "orders_arrived", default=None
)


class SeenStatuses:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[int, _UnderWay] = {}  # only orders with commands under way: bounded by them

    @contextmanager
    def arriving(self, order: int) -> Iterator[Seen]:
        """A command on `order` under way for the block: the status its caller saw, as it is learnt."""
        with self._lock:
            under_way = self._orders.setdefault(order, _UnderWay(0, Seen()))
            under_way.commands += 1
            seen = under_way.seen
        arrival = _arrived.set((self, order, seen))
        try:
            yield seen
        finally:
            _arrived.reset(arrival)
            with self._lock:
                under_way.commands -= 1
                if not under_way.commands:
                    del self._orders[order]

    @contextmanager
    def under_way(self, order: int) -> Iterator[Seen]:
        """The command on `order` of this context under way for the block: its `Seen` from where it
        arrived (`arriving`, entered by the caller), or from now if it was not registered before."""
        arrived = _arrived.get()
        if arrived is not None and arrived[:2] == (self, order):
            yield arrived[2]
            return
        with self.arriving(order) as seen:
            yield seen

    def saved(self, order: int, status: str) -> None:
        """A command on `order` (under way) was saved: the commands arriving from now on saw `status`."""
        with self._lock:
            self._orders[order].seen = Seen(status)
