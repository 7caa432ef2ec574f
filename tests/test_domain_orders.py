"""The order lifecycle, walked exhaustively: every command from every status by every party.

The expected outcomes come from a literal copy of DESIGN.md's table, never from `RULES` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from ugc.errors import Conflict, InvalidField, NotAllowed, NotFound, WrongState
from ugc.events import SCHEDULER, Caused, operator_actor, user_actor
from ugc.notifications import Parties, notification_type, recipients
from ugc.orders import (
    CANCELLED,
    COMPLETED,
    DELIVERED,
    EVENT_NAMES,
    IN_PROGRESS,
    PENDING,
    RULES,
    STATUSES,
    SYSTEM,
    Order,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
BUYER, CREATOR, STRANGER = 11, 22, 33
PARTIES = Parties(buyer=BUYER, creator=CREATOR)


def placed(allows_modifications: bool = True, *, number: int = 1, at: datetime = NOW) -> Order:
    return Order.place(
        number=number,
        buyer=BUYER,
        buyer_username="buyer",
        creator=CREATOR,
        creator_profile=5,
        creator_username="creator",
        service=7,
        service_title="Видеообзор",
        price=Decimal("1000"),
        options=[{"id": 1, "name": "Срочно", "price": Decimal("200")}],
        total_price=Decimal("1200"),
        requirements="Снять распаковку",
        delivery_date="2026-04-01",
        allows_modifications=allows_modifications,
        at=at,
    )


def in_status(status: str) -> Order:
    order = placed()
    if status in (IN_PROGRESS, DELIVERED, COMPLETED):
        order.accept(CREATOR, NOW)
    if status in (DELIVERED, COMPLETED):
        order.deliver(CREATOR, 1, "Готово", [], NOW)
    if status == COMPLETED:
        order.approve(BUYER, NOW)
    if status == CANCELLED:
        order.cancel(BUYER, "Передумал", NOW)
    assert order.status == status
    return order


@dataclass(frozen=True)
class Row:
    """One row of DESIGN.md's order-lifecycle table, as written there."""

    command: str
    who: frozenset[str]
    sources: frozenset[str]
    target: str
    event: str
    notifies: str  # "creator", "buyer" or "the other party"
    notification: str | None = None  # the type, where the table names one


def row(command: str, who: str, sources: str, target: str, event: str, notifies: str) -> Row:
    recipient, _, kind = notifies.partition(": ")
    return Row(
        command,
        frozenset(who.split(" or ")),
        frozenset(sources.split(", ")),
        target,
        event,
        recipient,
        kind or None,
    )


# DESIGN.md, "The order lifecycle", copied by hand and never computed from ugc/orders.py, so a wrong
# row in RULES fails here. `place` (no "from") is pinned by the tests further down; the qualifiers
# "if the service allows modifications" and "once" too.
LIFECYCLE = [
    row("accept", "creator", "pending", "in_progress", "OrderAccepted", "buyer"),
    row("update", "buyer", "pending", "pending", "OrderUpdated", "creator"),
    row("deliver", "creator", "pending, in_progress", "delivered", "WorkDelivered", "buyer: order_delivered"),
    row("request revision", "buyer", "delivered", "in_progress", "RevisionRequested", "creator"),
    row("approve", "buyer", "delivered", "completed", "OrderCompleted", "creator: order_completed"),
    row("cancel", "buyer or creator", "pending, in_progress", "cancelled", "OrderCancelled", "the other party"),
    row("review", "buyer", "completed", "completed", "OrderReviewed", "creator: new_review"),
    # Not in DESIGN.md's table: the scheduler's row (README, UGC_AUTO_COMPLETE_DAYS); nobody acted, so both are told.
    row("auto-complete", "system", "delivered", "completed", "OrderAutoCompleted", "both: order_completed"),
]
ALL_STATUSES = ("pending", "in_progress", "delivered", "completed", "cancelled")

COMMANDS: dict[str, tuple[str, Callable[[Order, int], None]]] = {
    "accept": ("accept", lambda o, a: o.accept(a, NOW)),
    "update": ("update", lambda o, a: o.update(a, {"requirements": "Новые требования"}, NOW)),
    "deliver": ("deliver", lambda o, a: o.deliver(a, 2, "Работа", [], NOW)),
    "request revision": ("request_revision", lambda o, a: o.request_revision(a, "Переделать", NOW)),
    "approve": ("approve", lambda o, a: o.approve(a, NOW)),
    "auto-complete": ("auto_complete", lambda o, a: o.auto_complete(NOW)),
    "cancel": ("cancel", lambda o, a: o.cancel(a, "Причина", NOW)),
    "review": ("review", lambda o, a: o.review(a, 3, 5, "Отлично", NOW)),
}
ACTORS = {"buyer": BUYER, "creator": CREATOR, "stranger": STRANGER, "system": SYSTEM}
OTHER = {BUYER: CREATOR, CREATOR: BUYER}


def expected(rule: Row, status: str, party: str) -> type[Exception] | None:
    """DESIGN.md's order of checks: not a participant 404, wrong actor 403, wrong state 409.

    The scheduler is no stranger to an order, but it may only issue its own row (403 otherwise).
    """
    if party == "stranger":
        return NotFound
    if party not in rule.who:
        return NotAllowed
    return None if status in rule.sources else WrongState


def _walk() -> list[tuple[Row, str, str]]:
    """Every row from every status by every party (the scheduler's command names no party: only its own)."""
    return [
        (rule, status, party)
        for rule in LIFECYCLE
        for status in ALL_STATUSES
        for party in (["system"] if rule.who == {"system"} else list(ACTORS))
    ]


@pytest.mark.parametrize(
    ("rule", "status", "party"), _walk(), ids=lambda v: v.command if isinstance(v, Row) else str(v)
)
def test_every_command_from_every_status(rule: Row, status: str, party: str) -> None:
    order = in_status(status)
    before = order.version
    actor = ACTORS[party]
    run = COMMANDS[rule.command][1]
    outcome = expected(rule, status, party)
    if outcome is None:
        run(order, actor)
        assert order.version == before + 1
        assert order.status == rule.target
        (happened,) = order.collect_events()[-1:]
        assert EVENT_NAMES[type(happened)] == rule.event
        told = {
            "buyer": (BUYER,),
            "creator": (CREATOR,),
            "the other party": (OTHER.get(actor),),
            "both": (CREATOR, BUYER),
        }[rule.notifies]
        assert recipients(happened, PARTIES) == told
        assert isinstance(happened, Caused)
        assert happened.actor == (SCHEDULER if party == "system" else user_actor(actor))
        if rule.notification is not None:
            assert notification_type(happened) == rule.notification
    else:
        with pytest.raises(outcome) as error:
            run(order, actor)
        assert order.version == before, "a refused command must record nothing"
        if isinstance(error.value, WrongState):
            assert error.value.current == status


def test_the_table_covers_every_rule_of_the_code() -> None:
    assert {COMMANDS[rule.command][0] for rule in LIFECYCLE} == set(RULES)
    assert set(ALL_STATUSES) == set(STATUSES)


def test_placing_starts_pending_and_tells_the_creator() -> None:
    order = placed()
    assert order.status == "pending"
    (happened,) = order.collect_events()
    assert EVENT_NAMES[type(happened)] == "OrderPlaced"
    assert recipients(happened, PARTIES) == (CREATOR,) and notification_type(happened) == "new_order"
    assert isinstance(happened, Caused)
    assert happened.actor == user_actor(BUYER)


def test_a_buyer_cannot_order_their_own_service() -> None:
    with pytest.raises(InvalidField):
        Order.place(
            number=1,
            buyer=1,
            buyer_username="x",
            creator=1,
            creator_profile=1,
            creator_username="x",
            service=1,
            service_title="t",
            price=Decimal(1),
            options=[],
            total_price=Decimal(1),
            requirements="",
            delivery_date="2026-04-01",
            allows_modifications=True,
            at=NOW,
        )


def test_revision_needs_a_service_that_allows_modifications() -> None:
    """403 in every status (before the state's 409: it is never possible), to the buyer only."""
    order = placed(allows_modifications=False)
    for status in (PENDING, IN_PROGRESS, DELIVERED):
        with pytest.raises(NotAllowed) as refused:
            order.request_revision(BUYER, "Ещё раз", NOW)
        assert (refused.value.code, order.status) == ("modifications_not_allowed", status)
        with pytest.raises(NotAllowed) as wrong_party:
            order.request_revision(CREATOR, "Ещё раз", NOW)
        assert wrong_party.value.code == "permission_denied"
        if status == PENDING:
            order.accept(CREATOR, NOW)
        elif status == IN_PROGRESS:
            order.deliver(CREATOR, 1, "Готово", [], NOW)


def test_an_order_is_reviewed_once() -> None:
    order = in_status(COMPLETED)
    order.review(BUYER, 1, 5, "Отлично", NOW)
    with pytest.raises(Conflict):
        order.review(BUYER, 2, 4, "Ещё отзыв", NOW)


def test_events_say_who_acted_so_whom_to_tell_follows() -> None:
    order = placed()
    order.accept(CREATOR, NOW)
    order.deliver(CREATOR, 1, "Готово", [5], NOW + timedelta(hours=1))
    order.request_revision(BUYER, "Поправьте звук", NOW)
    order.deliver(CREATOR, 2, "Исправлено", [], NOW)
    order.approve(BUYER, NOW)
    order.review(BUYER, 1, 5, "Спасибо", NOW)
    events = order.collect_events()
    told = [recipients(e, PARTIES) for e in events]
    assert told == [(CREATOR,), (BUYER,), (BUYER,), (CREATOR,), (BUYER,), (CREATOR,), (CREATOR,)]


def test_cancel_tells_the_other_party() -> None:
    by_creator = placed()
    by_creator.cancel(CREATOR, "Не успеваю", NOW)
    assert recipients(by_creator.collect_events()[-1], PARTIES) == (BUYER,)
    by_buyer = placed()
    by_buyer.cancel(BUYER, "Не нужно", NOW)
    assert recipients(by_buyer.collect_events()[-1], PARTIES) == (CREATOR,)


@pytest.mark.parametrize("status", STATUSES)
def test_the_operator_cancels_an_erased_partys_order_from_the_states_a_party_may(status: str) -> None:
    order = in_status(status)
    order.collect_events()
    if status not in (PENDING, IN_PROGRESS):
        with pytest.raises(WrongState) as refused:
            order.cancel_for_erased(operator_actor("root"), BUYER, "Аккаунт участника удален.", NOW)
        assert refused.value.current == status
        return
    order.cancel_for_erased(operator_actor("root"), BUYER, "Аккаунт участника удален.", NOW)
    (cancelled,) = order.collect_events()
    assert isinstance(cancelled, Order.Cancelled) and cancelled.actor == "operator:root"
    assert (order.status, order.cancellation_reason) == (CANCELLED, "Аккаунт участника удален.")
    assert cancelled.erased_party == BUYER


@pytest.mark.parametrize(("erased", "told"), [(BUYER, (CREATOR,)), (CREATOR, (BUYER,))])
def test_only_the_other_party_is_told_of_an_erased_partys_cancellation(erased: int, told: tuple[int]) -> None:
    order = placed()
    order.cancel_for_erased(operator_actor("root"), erased, "Аккаунт участника удален.", NOW)
    cancelled = order.collect_events()[-1]
    assert isinstance(cancelled, Order.Cancelled)
    assert recipients(cancelled, PARTIES) == told
    # One stored before cancellations named the erased party (upcast: None) tells both, as it did.
    assert recipients(replace(cancelled, erased_party=None), PARTIES) == (CREATOR, BUYER)


def test_only_an_operator_cancels_on_the_operators_word_and_only_for_a_party() -> None:
    for actor in (user_actor(BUYER), user_actor(CREATOR), SCHEDULER):
        with pytest.raises(NotAllowed):
            placed().cancel_for_erased(actor, BUYER, "Причина", NOW)
    with pytest.raises(NotAllowed):
        placed().cancel_for_erased(operator_actor("root"), STRANGER, "Причина", NOW)


def test_update_records_only_real_changes() -> None:
    order = placed()
    order.update(BUYER, {"requirements": "Снять распаковку", "status": "completed"}, NOW)
    assert len(order.collect_events()) == 1


IMMUTABLE = (str, int, bool, Decimal, datetime, type(None), UUID)


def _orders_in_every_state() -> list[Order]:
    reviewed = in_status(COMPLETED)
    reviewed.review(BUYER, 1, 5, "Отлично", NOW)
    revised = in_status(DELIVERED)
    revised.request_revision(BUYER, "Поправьте звук", NOW)
    updated = placed()
    updated.update(BUYER, {"requirements": "Снять две распаковки"}, NOW)
    return [*(in_status(status) for status in STATUSES), reviewed, revised, updated]


@pytest.mark.parametrize("order", _orders_in_every_state(), ids=lambda o: f"{o.status}-v{o.version}")
def test_a_deep_copy_equals_the_order_and_shares_nothing_mutable(order: Order) -> None:
    """Order.__deepcopy__ copies only the options and the pending events' list: every other attribute
    must be immutable, or a copy decided on (GroupCommit._load) would change the kept order too."""
    twin = deepcopy(order)
    assert type(twin) is Order and vars(twin) == vars(order)
    for name, value in vars(order).items():
        if name == "options":
            assert value is not twin.options and all(a is not b for a, b in zip(value, twin.options, strict=True))
            assert all(isinstance(v, IMMUTABLE) for option in value for v in option.values())
        elif name == "_pending_events":
            assert value is not twin._pending_events
        else:
            assert isinstance(value, IMMUTABLE), f"{name} is a {type(value).__name__}: copy it in __deepcopy__"
    kept = dict(vars(order))
    later = NOW + timedelta(days=1)
    decide = {
        PENDING: lambda: twin.accept(CREATOR, later),
        IN_PROGRESS: lambda: twin.deliver(CREATOR, 9, "Ещё", [3], later),
        DELIVERED: lambda: twin.approve(BUYER, later),
        COMPLETED: lambda: twin.review(BUYER, 9, 4, "Хорошо", later) if not twin.reviewed else None,
    }.get(twin.status)
    if decide is not None:
        decide()
    twin.options[0]["name"] = "Изменено"
    assert vars(order) == kept and order.options[0]["name"] == "Срочно"
