"""The orders of an erased person that nobody can carry on any more: cancelled on the operator's word.

A `pending` or `in_progress` order waits for its creator to deliver and then for its buyer to
approve; with either of them erased it would wait forever. `ugc users erase` cancels each as the
operator (`Order.cancel_for_erased`): an ordinary OrderCancelled, with a fixed reason and the erased
party named, which the notifications projection tells the other party of. A `delivered` order stays: its buyer may still
approve it, and the scheduler completes it when they do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from eventsourcing.application import Application

from commands.saving import Positions, change, stored_so_far
from ugc.clock import Clock
from ugc.errors import Unavailable, WrongState
from ugc.orders import Order, order_id

# The reason every such cancellation records; the order's other party reads it on the order.
PARTY_ERASED = "Аккаунт участника удален."


class OrdersUnseen(Unavailable):
    """The orders read model did not catch up to be asked (again): `cancelled`, the orders cancelled
    before, are cancelled all the same, and whether any other order of the person is open is not known."""

    def __init__(self, cancelled: list[int]) -> None:
        super().__init__()
        self.cancelled = cancelled


# The ids of a user's `pending` and `in_progress` orders, as the orders read model shows them once it
# has applied these positions (no log lists one person's orders).
Listed = Callable[[int, Positions], Sequence[int]]


def cancel_orders_of_erased(
    app: Application[UUID], clock: Clock, user_id: int, actor: str, listed: Listed
) -> list[int]:
    """Cancel every order of the erased `user_id` (as buyer or creator) that is still `pending` or
    `in_progress`, with `actor` (the operator) recorded; the ids cancelled.

    The read model is asked again once it has applied the cancellations, until it names no order
    not tried yet: an order placed while the erasure ran (decided on the service before its
    withdrawal was stored, or for the buyer before their erasure was) is found and cancelled too,
    if its save is stored by then. One saved later still is left to the next erasure. A read model
    that does not catch up ends it with OrdersUnseen, which names the orders cancelled until then.
    """
    tried: set[int] = set()
    cancelled: list[int] = []
    while fresh := [number for number in _look(app, user_id, listed, cancelled) if number not in tried]:
        for number in fresh:
            tried.add(number)
            if _cancel(app, clock, number, user_id, actor):
                cancelled.append(number)
    return cancelled


def _look(app: Application[UUID], user_id: int, listed: Listed, cancelled: list[int]) -> Sequence[int]:
    """The orders the read model lists, once it has applied the log as it stands; OrdersUnseen, naming
    the orders `cancelled` so far, when it does not catch up."""
    try:
        return listed(user_id, stored_so_far(app))
    except Unavailable:
        raise OrdersUnseen(cancelled) from None


def _cancel(app: Application[UUID], clock: Clock, number: int, erased_party: int, actor: str) -> bool:
    """Cancel one order of `erased_party`; False if it left the states one may cancel in (delivered meanwhile)."""

    def load() -> Order:
        order: Order = app.repository.get(order_id(number))
        return order

    try:
        change(app, load, lambda order: order.cancel_for_erased(actor, erased_party, PARTY_ERASED, clock.now()))
    except WrongState:
        return False
    return True
