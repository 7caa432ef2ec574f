"""Keeps `orders`, `deliveries` and `reviews` from the orders log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from projections.base import Handler, Projection
from projections.held import HeldInserts, Insert
from ugc.orders import CANCELLED, COMPLETED, DELIVERED, IN_PROGRESS, PENDING, Order
from ugc.platform.dialect import Cursor
from ugc.platform.store import Orders

CountKey = tuple[int, str, str]  # (user id, role, status) of a row of `order_counts`

NEW_ORDER = Insert(
    "orders",
    {
        "id": "bigint",
        "uuid": "text",
        "version": "bigint",
        "buyer_id": "bigint",
        "buyer_username": "text",
        "creator_id": "bigint",
        "creator_profile_id": "bigint",
        "creator_username": "text",
        "service_id": "bigint",
        "service_title": "text",
        "status": "text",
        "requirements": "text",
        "price": "numeric",
        "total_price": "numeric",
        "selected_options": "jsonb",
        "delivery_date": "text",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
)


class OrdersProjection(Projection):
    name = "orders"
    applications: ClassVar[tuple[str, ...]] = (Orders.name,)
    tables: ClassVar[tuple[str, ...]] = ("orders", "order_counts", "deliveries", "delivered_files", "reviews")

    def __init__(self) -> None:
        # A batch's new orders and their counts, written together (before any order is changed).
        self._placed = HeldInserts()
        self._counts: Counter[CountKey] = Counter()

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Order.Placed: self.placed,
            Order.Accepted: lambda cur, e: self._set(cur, e, status=IN_PROGRESS),
            Order.Updated: lambda cur, e: self._set(cur, e, **e.changes),
            Order.WorkDelivered: self.delivered,
            Order.RevisionRequested: lambda cur, e: self._set(cur, e, status=IN_PROGRESS),
            Order.Completed: lambda cur, e: self._set(cur, e, status=COMPLETED, completed_at=e.at),
            Order.AutoCompleted: lambda cur, e: self._set(cur, e, status=COMPLETED, completed_at=e.at),
            Order.Cancelled: lambda cur, e: self._set(
                cur, e, status=CANCELLED, cancelled_at=e.at, cancellation_reason=e.reason
            ),
            Order.Reviewed: self.reviewed,
        }

    def before_commit(self, cur: Cursor) -> None:
        self._placed.write(cur)
        add_order_counts(cur, self._counts)
        self._counts.clear()

    def aborted(self) -> None:
        self._placed.clear()
        self._counts.clear()

    def placed(self, cur: Cursor, e: Order.Placed) -> None:
        self._placed.add(
            NEW_ORDER,
            (
                e.number,
                str(e.originator_id),
                e.originator_version,
                e.buyer,
                e.buyer_username,
                e.creator,
                e.creator_profile,
                e.creator_username,
                e.service,
                e.service_title,
                PENDING,
                e.requirements,
                e.price,
                e.total_price,
                [_jsonable(option) for option in e.options],
                e.delivery_date,
                e.at,
                e.at,
            ),
        )
        self._counts.update(order_count_changes(e.buyer, e.creator, None, PENDING))

    def delivered(self, cur: Cursor, e: Order.WorkDelivered) -> None:
        self._set(cur, e, status=DELIVERED, delivered_at=e.at)
        uuid = str(e.originator_id)
        cur.execute(
            "INSERT INTO deliveries (id, order_id, message, file_ids, created_at) "
            "SELECT %s, id, %s, %s, %s FROM orders WHERE uuid = %s",
            (e.delivery, e.message, list(e.files), e.at, uuid),
        )
        for file_id in e.files:
            cur.execute(
                "INSERT INTO delivered_files (file_id, order_id) SELECT %s, id FROM orders WHERE uuid = %s "
                "ON CONFLICT DO NOTHING",
                (file_id, uuid),
            )

    def reviewed(self, cur: Cursor, e: Order.Reviewed) -> None:
        self._set(cur, e)
        cur.execute(
            "INSERT INTO reviews (id, order_id, creator_profile_id, reviewer_id, reviewer_username, service_id, "
            "service_title, rating, content, created_at) "
            "SELECT %s, id, creator_profile_id, buyer_id, buyer_username, service_id, service_title, %s, %s, %s "
            "FROM orders WHERE uuid = %s",  # only the buyer reviews
            (e.review, e.rating, e.content, e.at, str(e.originator_id)),
        )

    def _set(self, cur: Cursor, e: Any, **columns: Any) -> None:
        """Apply `columns` and the event's version and time to the event's order.

        A change of status also moves the order between its parties' counts, read from the row
        before it changes. Nothing here waits for an answer: in a pipelined batch no lifecycle
        event costs a round trip.
        """
        self._placed.write(cur)  # the order may be one of them
        uuid = str(e.originator_id)
        if "status" in columns:
            # Old status -1 and new status +1 for each party, summed (an unchanged status nets 0).
            cur.execute(
                "INSERT INTO order_counts (user_id, role, status, n) "
                "SELECT user_id, role, status, SUM(n) FROM ("
                "SELECT buyer_id AS user_id, 'buyer' AS role, status, -1 AS n FROM orders WHERE uuid = %s "
                "UNION ALL SELECT creator_id, 'creator', status, -1 FROM orders WHERE uuid = %s "
                "UNION ALL SELECT buyer_id, 'buyer', %s, 1 FROM orders WHERE uuid = %s "
                "UNION ALL SELECT creator_id, 'creator', %s, 1 FROM orders WHERE uuid = %s"
                ") AS change WHERE true GROUP BY user_id, role, status "
                "ON CONFLICT (user_id, role, status) DO UPDATE SET n = order_counts.n + excluded.n",
                (uuid, uuid, columns["status"], uuid, columns["status"], uuid),
            )
        values = {**columns, "version": e.originator_version, "updated_at": e.at}
        assignments = ", ".join(f"{name} = %s" for name in values)
        cur.execute(f"UPDATE orders SET {assignments} WHERE uuid = %s", (*values.values(), uuid))


def order_count_changes(
    buyer_id: int, creator_id: int, old_status: str | None, new_status: str | None
) -> Counter[CountKey]:
    """How moving one order between statuses (None: from or to nowhere) changes both parties' counts."""
    changes: Counter[CountKey] = Counter()
    for delta, status in ((-1, old_status), (1, new_status)):
        if status is not None:
            for role, user_id in (("buyer", buyer_id), ("creator", creator_id)):
                changes[(user_id, role, status)] += delta
    return changes


def add_order_counts(cur: Cursor, changes: Mapping[CountKey, int]) -> None:
    """Add summed `changes` to `order_counts`, each key once per statement.

    A key whose changes cancel out is still written (with 0): a status an order of the user ever had
    keeps its row, whether the events came one by one or in one batch (a rebuild equals the live run).
    """
    columns = {"user_id": "bigint", "role": "text", "status": "text", "n": "bigint"}
    rows = [(*key, delta) for key, delta in changes.items()]
    if not rows:
        return
    for entry, params in cur.rows("changes", columns, rows):
        cur.execute(
            f"WITH {entry} INSERT INTO order_counts (user_id, role, status, n) "
            "SELECT user_id, role, status, n FROM changes WHERE true "
            "ON CONFLICT (user_id, role, status) DO UPDATE SET n = order_counts.n + excluded.n",
            params,
        )


def _jsonable(option: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if key == "price" else value for key, value in option.items()}
