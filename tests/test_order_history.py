"""An order's past read from the log: the history, and `as_of` folding events as the library's repository does."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from readmodels.audit_record import audit_record, order_record
from readmodels.order_history import LATEST, BadAsOf, order_as_of, order_events, parse_moment
from tests.backends import DATA_KEY
from tests.test_domain_orders import BUYER, CREATOR, NOW, placed
from ugc.errors import NotFound
from ugc.orders import Order, order_id
from ugc.platform.database import Database
from ugc.platform.encoding import dumps
from ugc.platform.recorded_log import Logged, RecordedLog
from ugc.platform.store import EventStores
from ugc.wiring import migrate


@dataclass
class Orders:
    app: Any  # the orders application: saves aggregates, rebuilds them
    log: RecordedLog  # what the read side reads the past from


@pytest.fixture
def orders(database_url: str) -> Iterator[Orders]:
    db = Database(database_url)
    migrate(db)
    stores = EventStores(database_url, data_key=DATA_KEY)
    try:
        yield Orders(stores.orders, RecordedLog(stores, "orders"))
    finally:
        stores.close()
        db.close()


def a_whole_lifecycle(number: int) -> Order:
    """Placed, then one event a minute: accepted, delivered, sent back, delivered again, approved, reviewed."""
    at = [NOW + timedelta(minutes=minute) for minute in range(7)]
    order = placed(number=number, at=at[0])
    order.accept(CREATOR, at[1])
    order.deliver(CREATOR, 1, "Черновик", [], at[2])
    order.request_revision(BUYER, "Короче", at[3])
    order.deliver(CREATOR, 2, "Готово", [], at[4])
    order.approve(BUYER, at[5])
    order.review(BUYER, 3, 5, "Отлично", at[6])
    return order


def test_as_of_a_version_or_a_moment_is_what_the_repository_rebuilds(orders: Orders) -> None:
    orders.app.save(a_whole_lifecycle(1))
    versions = range(1, 8)
    rebuilt = {v: orders.app.repository.get(order_id(1), version=v).as_row() for v in versions}
    assert [order_as_of(orders.log, 1, v) for v in versions] == [rebuilt[v] for v in versions]
    # A moment sees the last event at or before it.
    assert order_as_of(orders.log, 1, NOW + timedelta(minutes=2)) == rebuilt[3]
    assert order_as_of(orders.log, 1, NOW + timedelta(minutes=2, seconds=59)) == rebuilt[3]
    assert order_as_of(orders.log, 1) == orders.app.repository.get(order_id(1)).as_row()
    with pytest.raises(NotFound):
        order_as_of(orders.log, 1, NOW - timedelta(seconds=1))
    for version in (0, 8):
        with pytest.raises(BadAsOf) as refused:
            order_as_of(orders.log, 1, version)
        assert (refused.value.reason, refused.value.latest) == ("version", 7)


def test_a_moment_reads_a_prefix_of_the_log_where_the_events_times_are_out_of_order(orders: Orders) -> None:
    """Each event's time is the clock of the process that decided it: a scheduler's clock ahead of
    the API's makes a later review look older than the completion before it. As of a moment after
    the review, the order is as after it (completion included): never a review without its completion."""
    order = placed(number=4, at=NOW)
    order.accept(CREATOR, NOW + timedelta(minutes=1))
    order.deliver(CREATOR, 1, "Готово", [], NOW + timedelta(minutes=2))
    order.approve(BUYER, NOW + timedelta(hours=2))  # a clock two hours ahead
    order.review(BUYER, 1, 5, "Отлично", NOW + timedelta(minutes=5))
    orders.app.save(order)
    moment = NOW + timedelta(hours=1)
    assert order_as_of(orders.log, 4, moment) == orders.app.repository.get(order_id(4), version=5).as_row()
    assert [e["version"] for e in order_record(orders.log, 4, moment)] == [1, 2, 3, 4, 5]
    assert order_as_of(orders.log, 4, NOW + timedelta(minutes=3)) == order_as_of(orders.log, 4, 3)


def test_the_history_names_each_event_and_its_actor_and_an_unknown_order_is_not_found(orders: Orders) -> None:
    orders.app.save(a_whole_lifecycle(2))
    history = order_record(orders.log, 2)
    assert [(e["version"], e["type"], e["actor"]["username"]) for e in history] == [
        (1, "OrderPlaced", "buyer"),
        (2, "OrderAccepted", "creator"),
        (3, "WorkDelivered", "creator"),
        (4, "RevisionRequested", "buyer"),
        (5, "WorkDelivered", "creator"),
        (6, "OrderCompleted", "buyer"),
        (7, "OrderReviewed", "buyer"),
    ]
    with pytest.raises(NotFound):
        order_record(orders.log, 3)


@pytest.mark.parametrize(
    ("text", "as_of", "bound"),
    [
        ("2026-12-05T10:00:00.0000001Z", "10:00:00", "10:00:00.000001"),
        ("2026-12-05T10:00:00.1234569+00:00", "10:00:00.123456", "10:00:00.123457"),
        ("2026-12-05T13:00:00,0000005+03:00", "10:00:00", "10:00:00.000001"),
        ("2026-12-05T10:00:00.1234560000Z", "10:00:00.123456", "10:00:00.123456"),  # nothing past it: as written
        ("2026-12-05T10:00:00.123456Z", "10:00:00.123456", "10:00:00.123456"),
        # RFC 3339 lets both letters be lower case; the `t` was read, the `z` refused.
        ("2026-12-05t10:00:00.0000001z", "10:00:00", "10:00:00.000001"),
    ],
)
def test_past_the_microsecond_as_of_is_cut_and_a_bound_is_taken_up(text: str, as_of: str, bound: str) -> None:
    """As of T+100ns is after the events of T and before those of T+1µs: T, cut; a bound of stored times
    (`created_after`, `created_before`) is the first of them at or after it, T+1µs."""
    day = date(2026, 12, 5)
    assert parse_moment(text) == datetime.combine(day, time.fromisoformat(as_of), UTC)
    assert parse_moment(text, ceiling=True) == datetime.combine(day, time.fromisoformat(bound), UTC)
    assert parse_moment("9999-12-31T23:59:59.9999999Z", ceiling=True) == LATEST


def test_the_records_times_always_carry_six_fractional_digits(orders: Orders) -> None:
    """`recorded_at` as the chain's recipe hashes it, so an auditor may copy it into the canonical JSON
    as shown; `occurred_at` alike. orjson leaves the fraction out of a time on the second."""
    orders.app.save(a_whole_lifecycle(5))  # placed at NOW, 12:00:00.000000
    on_the_second = [
        Logged(logged.event, dataclasses.replace(logged.recorded, recorded_at=NOW))
        for logged in order_events(orders.log, 5)
    ]
    placed_entry = json.loads(dumps(audit_record(on_the_second)))[0]
    assert (placed_entry["occurred_at"], placed_entry["recorded_at"]) == ("2026-03-01T12:00:00.000000Z",) * 2
