"""A few hundred random valid commands, then every read model replayed from the log: the same tables,
and a blue/green rebuild of all of them changes no row."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from projections.bluegreen import rebuild
from projections.compare import compare_read_models
from projections.orders import OrdersProjection
from projections.registry import all_projections
from tests.conftest import Api, new_client
from tests.orders_world import Deal, a_deal, act, place
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.orders import order_id
from ugc.platform.database import Database

# What each party may do from each status, and the request that does it.
MOVES: dict[str, list[tuple[str, str, dict[str, Any] | None, str]]] = {
    "pending": [
        ("creator", "accept", None, "in_progress"),
        ("creator", "deliveries", {"message": "Сразу готово"}, "delivered"),
        ("buyer", "cancel", {"reason": "Передумал"}, "cancelled"),
        ("creator", "cancel", {"reason": "Занят"}, "cancelled"),
    ],
    "in_progress": [
        ("creator", "deliveries", {"message": "Готово"}, "delivered"),
        ("buyer", "cancel", {"reason": "Долго"}, "cancelled"),
    ],
    "delivered": [
        ("buyer", "approve", None, "completed"),
        ("buyer", "request-revision", {"message": "Поправьте"}, "in_progress"),
    ],
    "completed": [("buyer", "reviews", {"content": "Отзыв", "rating": 0}, "reviewed")],
}


def table(db: Database, name: str) -> list[dict[str, Any]]:
    with db.transaction() as cur:
        rows = cur.execute(f"SELECT * FROM {name}").fetchall()
    return sorted(rows, key=repr)


def test_rebuilt_read_models_equal_the_live_ones(settings: Settings) -> None:
    rng = random.Random(20261127)
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deals = [a_deal(api) for _ in range(3)]
        deals += [Deal(creator=d.creator, buyer=api.verified_user(), service=d.service) for d in deals]
        orders: dict[int, tuple[Deal, str]] = {}
        for _ in range(300):
            clock.advance(timedelta(minutes=rng.randint(1, 90)))
            open_orders = [(o, d, s) for o, (d, s) in orders.items() if s in MOVES]
            if not open_orders or rng.random() < 0.25:
                deal = rng.choice(deals)
                headers = {"Authorization": f"Bearer {api.login(deal.buyer['username'])['access']}"}
                placed = place(
                    api,
                    Deal(deal.creator, deal.buyer | {"headers": headers}, deal.service),
                    delivery_date=(clock.now().date() + timedelta(days=rng.randint(1, 30))).isoformat(),
                    selected_option_ids=rng.sample([o["id"] for o in deal.service["options"]], rng.randint(0, 2)),
                )
                orders[placed["id"]] = (deal, "pending")
                continue
            order, deal, status = rng.choice(open_orders)
            who, action, body, target = rng.choice(MOVES[status])
            if action == "reviews":
                body = {"content": f"Оценка {order}", "rating": rng.randint(1, 5)}
            party = deal.creator if who == "creator" else deal.buyer
            headers = {"Authorization": f"Bearer {api.login(party['username'])['access']}"}
            response = client.post(f"/api/v1/orders/{order}/{action}/", headers=headers, json=body)
            assert response.status_code in (200, 201), response.text
            orders[order] = (deal, target)

        db: Database = client.app.state.services.db  # type: ignore[attr-defined]
        projections = [p for p in all_projections(settings) if p.read_model]
        live = {name: table(db, name) for p in projections for name in p.tables}
        assert len(live["orders"]) == len(orders) and live["reviews"] and live["deliveries"]
        stores = client.app.state.services.orders.stores  # type: ignore[attr-defined]
        assert compare_read_models(db, stores, all_projections(settings)) == []
        # Batches that end anywhere: orders placed in an earlier batch, moved through several
        # statuses, delivered and reviewed within a later one (the live runner's batches here hold
        # a command's events each, a replay's by 500 hold every order from its placing on).
        for batch_size in (2, 7, 40):
            assert compare_read_models(db, stores, all_projections(settings), batch_size=batch_size) == [], batch_size
        rebuild(db, stores, projections)
        rebuilt = {name: table(db, name) for p in projections for name in p.tables}
        for name, rows in live.items():
            assert rebuilt[name] == rows, name
        assert date.today() <= clock.now().date()


def test_a_batch_that_moves_an_order_placed_before_it_through_several_statuses(settings: Settings) -> None:
    """A replay's batch that starts after an order was placed and then delivers, approves and reviews
    it: the order's counts (the `delivered` row it passed through kept, at 0), its row, its delivery
    and its review are what the live runner made of the events one by one."""
    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = place(api, deal)["id"]
        edit = client.patch(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"requirements": "Иначе"})
        assert edit.status_code == 200, edit.text
        act(api, deal.creator, order, "accept")
        act(api, deal.creator, order, "deliveries", {"message": "Готово"}, expect=201)
        act(api, deal.buyer, order, "approve")
        act(api, deal.buyer, order, "reviews", {"content": "Хорошо", "rating": 5}, expect=201)

        db: Database = client.app.state.services.db  # type: ignore[attr-defined]
        with db.read() as cur:
            counts = cur.execute(
                "SELECT status, n FROM order_counts WHERE user_id = %s AND role = 'buyer'", (deal.buyer["id"],)
            ).fetchall()
        assert sorted((c["status"], c["n"]) for c in counts) == [
            ("completed", 1),
            ("delivered", 0),
            ("in_progress", 0),
            ("pending", 0),
        ]
        stores = client.app.state.services.orders.stores  # type: ignore[attr-defined]
        log = stores.orders.recorder.select_notifications(start=0, limit=1_000_000, inclusive_of_start=False)
        placed = next(i for i, n in enumerate(log) if n.originator_id == order_id(order))
        # The first batch ends with the acceptance; the second holds delivery, approval and review.
        assert [n.topic for n in log[placed + 3 : placed + 6]] == [
            "ugc.Order.WorkDelivered",
            "ugc.Order.Completed",
            "ugc.Order.Reviewed",
        ]
        assert compare_read_models(db, stores, [OrdersProjection()], batch_size=placed + 3) == []
