"""The order lifecycle, walked exhaustively: every command from every status by every party."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ugc.errors import Conflict, InvalidField, NotAllowed, NotFound, WrongState
from ugc.orders import CANCELLED, COMPLETED, DELIVERED, IN_PROGRESS, RULES, STATUSES, SYSTEM, Order

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
BUYER, CREATOR, STRANGER = 11, 22, 33


def placed(allows_modifications: bool = True) -> Order:
    return Order.place(
        number=1,
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
        at=NOW,
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


COMMANDS: dict[str, Callable[[Order, int], None]] = {
    "accept": lambda o, a: o.accept(a, NOW),
    "update": lambda o, a: o.update(a, {"requirements": "Новые требования"}, NOW),
    "deliver": lambda o, a: o.deliver(a, 2, "Работа", [], NOW),
    "request_revision": lambda o, a: o.request_revision(a, "Переделать", NOW),
    "approve": lambda o, a: o.approve(a, NOW),
    "auto_complete": lambda o, a: o.auto_complete(NOW),
    "cancel": lambda o, a: o.cancel(a, "Причина", NOW),
    "review": lambda o, a: o.review(a, 3, 5, "Отлично", NOW),
}
ACTORS = {"buyer": BUYER, "creator": CREATOR, "stranger": STRANGER, "system": SYSTEM}


def expected(command: str, status: str, party: str) -> type[Exception] | None:
    rule = RULES[command]
    if command == "auto_complete":
        return None if status in rule.sources else WrongState
    if party in ("stranger", "system"):
        return NotFound
    if not (rule.actor == party or (rule.actor == "participant" and party in ("buyer", "creator"))):
        return NotAllowed
    return None if status in rule.sources else WrongState


@pytest.mark.parametrize("party", ["buyer", "creator", "stranger"])
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("command", list(RULES))
def test_every_command_from_every_status(command: str, status: str, party: str) -> None:
    order = in_status(status)
    before = order.version
    outcome = expected(command, status, party)
    if outcome is None:
        COMMANDS[command](order, ACTORS[party])
        assert order.version == before + 1
        target = RULES[command].target
        assert order.status == (target if target is not None else status)
    else:
        with pytest.raises(outcome) as error:
            COMMANDS[command](order, ACTORS[party])
        assert order.version == before, "a refused command must record nothing"
        if isinstance(error.value, WrongState):
            assert error.value.current == status


def test_the_table_covers_every_lifecycle_row_of_the_design() -> None:
    assert set(RULES) == {
        "accept",
        "update",
        "deliver",
        "request_revision",
        "approve",
        "auto_complete",
        "cancel",
        "review",
    }


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
    order = placed(allows_modifications=False)
    order.deliver(CREATOR, 1, "Готово", [], NOW)
    with pytest.raises(NotAllowed):
        order.request_revision(BUYER, "Ещё раз", NOW)


def test_an_order_is_reviewed_once() -> None:
    order = in_status(COMPLETED)
    order.review(BUYER, 1, 5, "Отлично", NOW)
    with pytest.raises(Conflict):
        order.review(BUYER, 2, 4, "Ещё отзыв", NOW)


def test_events_say_whom_to_tell_and_what() -> None:
    order = placed()
    order.accept(CREATOR, NOW)
    order.deliver(CREATOR, 1, "Готово", [5], NOW + timedelta(hours=1))
    order.request_revision(BUYER, "Поправьте звук", NOW)
    order.deliver(CREATOR, 2, "Исправлено", [], NOW)
    order.approve(BUYER, NOW)
    order.review(BUYER, 1, 5, "Спасибо", NOW)
    events = order.collect_events()
    recipients = [e.notify for e in events]
    assert recipients == [CREATOR, BUYER, BUYER, CREATOR, BUYER, CREATOR, CREATOR]
    assert all(isinstance(e.notice, str) and e.notice for e in events)


def test_cancel_tells_the_other_party() -> None:
    by_creator = placed()
    by_creator.cancel(CREATOR, "Не успеваю", NOW)
    assert by_creator.collect_events()[-1].notify == BUYER
    by_buyer = placed()
    by_buyer.cancel(BUYER, "Не нужно", NOW)
    assert by_buyer.collect_events()[-1].notify == CREATOR


def test_update_records_only_real_changes() -> None:
    order = placed()
    order.update(BUYER, {"requirements": "Снять распаковку", "status": "completed"}, NOW)
    assert len(order.collect_events()) == 1
