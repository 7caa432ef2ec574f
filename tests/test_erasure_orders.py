"""Erasing a person cancels their open orders, on the operator's word (both backends).

The app runs in-process with its projections and keeps the orders it saved (the group commit's
copies); `ugc users erase` runs in a process of its own, as the operator would, so the app's copies
go stale and its next command on such an order must read the cancellation (409, never 500).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from commands.accounts import AccountCommands
from commands.erased_orders import OrdersUnseen, cancel_orders_of_erased
from readmodels.notifications import stored_after
from readmodels.orders import cancellable_of_party
from readmodels.users import get_user
from readmodels.waiting import Progress
from tests.conftest import Api
from tests.orders_world import Deal, a_deal, act, order_in, place
from tests.test_api_notifications import counts_match_rows
from tests.test_personal_data import eventually, ugc
from ugc.clock import SystemClock
from ugc.config import Settings
from ugc.events import operator_actor
from ugc.platform.database import Database
from ugc.platform.dialect import Row
from ugc.platform.erasure_journal import record_erasure
from ugc.platform.store import EventStores

REASON = "Аккаунт участника удален."
CANCELLED_BY_OPERATOR = "Заказ отменен администратором."


def order_of(api: Api, who: dict[str, Any], order: int) -> dict[str, Any]:
    seen = api.client.get(f"/api/v1/orders/{order}/", headers=who["headers"])
    assert seen.status_code == 200, seen.text
    answer: dict[str, Any] = seen.json()
    return answer


def cancellations_told(api: Api, who: dict[str, Any], order: int) -> list[dict[str, Any]]:
    """The `order_cancelled` notifications `who` got about `order`."""
    found = api.client.get("/api/v1/notifications/", headers=who["headers"], params={"page_size": 100})
    assert found.status_code == 200, found.text
    return [n for n in found.json()["results"] if n["type"] == "order_cancelled" and n["data"] == {"order_id": order}]


def cancellations_kept_for(db: Database, user: int) -> list[Row]:
    """The `order_cancelled` rows of `user` in the read model, signed in or not (an erased person cannot)."""
    return [row for row in stored_after(db, user, 0) if row["type"] == "order_cancelled"]


def orders_in_every_status(api: Api, deal: Deal) -> dict[str, int]:
    return {status: order_in(api, deal, status) for status in ("pending", "in_progress", "delivered", "completed")}


def erase(settings: Settings, backend: str, username: str, *more: str) -> str:
    done = ugc(settings, backend, "users", "erase", username, "--yes", *more)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(done.stdout)


def test_erasing_a_creator_cancels_their_open_orders_for_the_buyer_and_leaves_the_others(
    api: Api, backend: str, settings: Settings, db: Database
) -> None:
    deal = a_deal(api)
    orders = orders_in_every_status(api, deal)

    assert "2 order(s) cancelled" in erase(settings, backend, deal.creator["username"])

    for status in ("pending", "in_progress"):
        seen = order_of(api, deal.buyer, orders[status])
        assert (seen["status"], seen["cancellation_reason"]) == ("cancelled", REASON), status
        assert seen["cancelled_at"] is not None
        told = eventually(lambda order=orders[status]: cancellations_told(api, deal.buyer, order))
        assert [n["message"] for n in told] == [CANCELLED_BY_OPERATOR], status
    assert cancellations_kept_for(db, deal.creator["id"]) == []  # only the other party is told
    counts_match_rows(api, deal.buyer)  # the cancellations counted with the rest
    assert order_of(api, deal.buyer, orders["delivered"])["status"] == "delivered"
    assert order_of(api, deal.buyer, orders["completed"])["status"] == "completed"
    history = api.client.get(f"/api/v1/orders/{orders['pending']}/history/", headers=deal.buyer["headers"])
    last = history.json()["results"][-1]
    assert (last["type"], last["actor"]["kind"]) == ("OrderCancelled", "operator"), last

    # The app's kept copies are stale: its next command reads the cancellation and answers 409.
    for status in ("pending", "in_progress"):
        refused = act(api, deal.buyer, orders[status], "cancel", {"reason": "Передумал"}, expect=409)
        assert refused == {"error": "Действие недоступно в текущем статусе заказа.", "status": "cancelled"}
    edited = api.client.patch(
        f"/api/v1/orders/{orders['pending']}/", headers=deal.buyer["headers"], json={"requirements": "Иначе"}
    )
    assert (edited.status_code, edited.json()["status"]) == (409, "cancelled")

    # Nobody is left to rework a delivered order: no revision; approving it still completes it.
    revision = act(api, deal.buyer, orders["delivered"], "request-revision", {"message": "Ещё"}, expect=409)
    assert revision == {"error": "Аккаунт креатора удален: доработка невозможна.", "status": "delivered"}
    assert act(api, deal.buyer, orders["delivered"], "approve")["status"] == "completed"

    assert "0 order(s) cancelled" in erase(settings, backend, deal.creator["username"])
    for status in ("pending", "in_progress"):
        assert len(cancellations_told(api, deal.buyer, orders[status])) == 1

    verified = ugc(settings, backend, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["findings"] == []


def test_erasing_a_buyer_cancels_their_open_orders_for_the_creator(
    api: Api, backend: str, settings: Settings, db: Database
) -> None:
    deal = a_deal(api)
    orders = orders_in_every_status(api, deal)
    elsewhere = a_deal(api)
    untouched = place(api, elsewhere)["id"]  # another buyer's order of another creator stays pending

    assert "2 order(s) cancelled" in erase(settings, backend, deal.buyer["username"])

    for status in ("pending", "in_progress"):
        seen = order_of(api, deal.creator, orders[status])
        assert (seen["status"], seen["cancellation_reason"]) == ("cancelled", REASON), status
        told = eventually(lambda order=orders[status]: cancellations_told(api, deal.creator, order))
        assert [n["message"] for n in told] == [CANCELLED_BY_OPERATOR], status
    assert cancellations_kept_for(db, deal.buyer["id"]) == []  # only the other party is told
    assert order_of(api, deal.creator, orders["delivered"])["status"] == "delivered"
    assert order_of(api, deal.creator, orders["completed"])["status"] == "completed"
    assert order_of(api, elsewhere.buyer, untouched)["status"] == "pending"

    accepted = act(api, deal.creator, orders["pending"], "accept", expect=409)
    assert accepted == {"error": "Действие недоступно в текущем статусе заказа.", "status": "cancelled"}
    delivered = act(api, deal.creator, orders["in_progress"], "deliveries", {"message": "Готово"}, expect=409)
    assert delivered["status"] == "cancelled"

    assert "0 order(s) cancelled" in erase(settings, backend, deal.buyer["username"])
    verified = ugc(settings, backend, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["findings"] == []


def test_replaying_the_journal_after_a_restore_cancels_the_erased_persons_open_orders(
    api: Api, backend: str, settings: Settings, db: Database
) -> None:
    deal = a_deal(api)
    pending = order_in(api, deal, "pending")
    # A database restored from before the erasure: the journal names the person, the log does not.
    user = get_user(db, deal.buyer["id"])
    assert user is not None
    record_erasure(
        settings.audit_dir, settings.audit_key, deal.buyer["id"], deal.buyer["username"], user["date_joined"]
    )

    replayed = ugc(settings, backend, "users", "erase", "--replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "1 order(s) cancelled" in replayed.stdout
    seen = order_of(api, deal.creator, pending)
    assert (seen["status"], seen["cancellation_reason"]) == ("cancelled", REASON)
    assert len(eventually(lambda: cancellations_told(api, deal.creator, pending))) == 1


def test_replaying_the_journal_finishes_a_person_erased_before_their_orders_and_services_were_seen_to(
    api: Api, backend: str, settings: Settings, db: Database
) -> None:
    """A backup taken between `User.Erased` and the cancellations (or a person erased before the
    release that cancels): the database shows them erased, their service active, their orders open."""
    deal = a_deal(api)
    orders = orders_in_every_status(api, deal)

    def journal(user: int, username: str, at: datetime) -> None:
        record_erasure(settings.audit_dir, settings.audit_key, user, username, at)

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        AccountCommands(stores, db, SystemClock()).erase(deal.creator["username"], operator_actor("tester"), journal)
    finally:
        stores.close()
    assert order_of(api, deal.buyer, orders["pending"])["status"] == "pending"

    replayed = ugc(settings, backend, "users", "erase", "--replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    for status in ("pending", "in_progress"):
        seen = order_of(api, deal.buyer, orders[status])
        assert (seen["status"], seen["cancellation_reason"]) == ("cancelled", REASON), status
    assert order_of(api, deal.buyer, orders["delivered"])["status"] == "delivered"
    assert api.client.get(f"/api/v1/services/{deal.service['id']}/").json()["is_active"] is False
    assert "1 service(s) withdrawn, 2 order(s) cancelled" in replayed.stdout, replayed.stdout
    assert " journaled erasure(s), 0 carried out again, 1 finished" in replayed.stdout, replayed.stdout

    again = ugc(settings, backend, "users", "erase", "--replay")  # nothing is left: nothing is done twice
    assert again.returncode == 0, again.stdout + again.stderr
    assert " journaled erasure(s), 0 carried out again, 0 finished" in again.stdout, again.stdout


def test_an_order_stored_after_the_erasure_looked_is_found_by_its_next_look_and_cancelled(
    api: Api, settings: Settings, db: Database
) -> None:
    deal = a_deal(api)
    first = place(api, deal)["id"]
    looks: list[list[int]] = []
    late: list[int] = []

    def cancellable(user: int, positions: dict[str, int]) -> list[int]:
        Progress().wait(db, positions, 10.0)
        found = cancellable_of_party(db, user)
        if not looks:  # an order saved the moment after the first look (decided before the erasure)
            late.append(place(api, deal)["id"])
        looks.append(found)
        return found

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        cancelled = cancel_orders_of_erased(
            stores.orders, SystemClock(), deal.buyer["id"], operator_actor("tester"), cancellable
        )
    finally:
        stores.close()
    assert cancelled == [first, *late]
    assert looks == [[first], late, []]
    assert order_of(api, deal.creator, late[0])["status"] == "cancelled"


def test_an_erasure_whose_read_model_stops_after_its_cancellations_says_which_it_cancelled(
    api: Api, settings: Settings, db: Database
) -> None:
    """The projections stop once the first look named the orders: the look again, for an order placed
    meanwhile, never comes, but the orders it cancelled are cancelled all the same, and said so."""
    deal = a_deal(api)
    first = place(api, deal)["id"]
    looks: list[list[int]] = []

    def cancellable(user: int, positions: dict[str, int]) -> list[int]:
        if looks:  # a position the read model never reaches: as if the projections had stopped
            positions = {log: position + 1 for log, position in positions.items()}
        Progress().wait(db, positions, 0.2 if looks else 10.0)
        looks.append(cancellable_of_party(db, user))
        return looks[-1]

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        with pytest.raises(OrdersUnseen) as unseen:
            cancel_orders_of_erased(
                stores.orders, SystemClock(), deal.buyer["id"], operator_actor("tester"), cancellable
            )
    finally:
        stores.close()
    assert (looks, unseen.value.cancelled) == ([[first]], [first])
    assert order_of(api, deal.creator, first)["status"] == "cancelled"
