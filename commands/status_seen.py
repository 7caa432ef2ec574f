"""The status each order had, as this process knows it, when each command on it arrived.

An order's command is meant for the status its caller saw: of two transitions racing on one order
(accept and cancel on a pending one), exactly one wins and the other answers 409, even where the rule
book would allow the second after the first (cancelling in progress). Across processes the store
says so: the second save clashes and is decided again on a status that is not the one it was first
decided on (`OrderCommands._change_numbered`). Within a process the group commit never clashes: a
second command on an order waits for the first one's group and is decided on its outcome. So each
command takes, when it arrives, a `Seen` shared with every command on that order still under way
here; the first decision fills it with the status it loaded, and a save that goes through starts a
new one for the commands arriving after it. A command arriving with none under way takes the status
it is first decided on, as from another process.
"""

from __future__ import annotations

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
        try:
            yield seen
        finally:
            with self._lock:
                under_way.commands -= 1
                if not under_way.commands:
                    del self._orders[order]

    def saved(self, order: int, status: str) -> None:
        """A command on `order` (under way) was saved: the commands arriving from now on saw `status`."""
        with self._lock:
            self._orders[order].seen = Seen(status)
