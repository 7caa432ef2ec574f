"""Commands issued by time rather than by users: completing orders the buyer left unanswered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from commands.orders import OrderCommands
from ugc.clock import Clock
from ugc.errors import DomainError

log = logging.getLogger(__name__)


class AutoCompleter:
    """Completes delivered orders older than the review period.

    `due` finds candidates (delivered before a moment); the order itself decides, so a candidate
    that moved on meanwhile, or a second scheduler racing this one, changes nothing.
    """

    def __init__(self, orders: OrderCommands, clock: Clock, due: Callable[[datetime], list[int]]) -> None:
        self.orders = orders
        self.clock = clock
        self.due = due

    def run_once(self) -> int:
        completed = 0
        for order in self.due(self.clock.now() - self.orders.auto_complete_after):
            try:
                self.orders.auto_complete(order)
            except (DomainError, IntegrityError) as refused:
                log.info("order %s not auto-completed: %s", order, refused)
                continue
            completed += 1
        return completed
