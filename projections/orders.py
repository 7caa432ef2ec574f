"""Keeps `orders`, `deliveries` and `reviews` from the orders log.

A batch is applied set-based, by the live runner and a replay alike: the handlers only fold each
event into what the batch holds per order, and `before_commit` writes it all with a fixed number of
statements, however many events the batch has (each an INSERT … SELECT or UPDATE … FROM over the
batch's rows, see `OverRows`):

1. the count changes of orders placed before the batch, from their stored status (read before 4);
2. the count changes of the orders placed in the batch, known in memory;
3. the orders placed in the batch, each inserted once with the columns its later events set;
4. the orders placed before the batch, each updated once with what its events set;
5. deliveries, delivered files and reviews, each taking its order's id (and a review the order's
   fields) from the `orders` rows as 3 and 4 left them.

What the tables hold afterwards is what applying the events one by one held (tests/test_replay.py
and the other rebuild == live tests): an event of an order that is not in `orders` (its placing
parked or skipped) changes nothing, and every count an order moved through keeps its row (see
`add_order_counts`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from projections.base import Handler, Projection
from projections.held import Insert, OverRows
from ugc.orders import CANCELLED, COMPLETED, DELIVERED, IN_PROGRESS, PENDING, Order
from ugc.platform.dialect import Cursor
from ugc.platform.store import Orders

CountKey = tuple[int, str, str]  # (user id, role, status) of a row of `order_counts`

# The columns an order's events after its placing set (besides `version` and `updated_at`), with
# their types; the bit of each in an update's `given` says the batch set it (NULL is a value too).
SETTABLE = {
    "status": "text",
    "requirements": "text",
    "delivery_date": "text",
    "cancellation_reason": "text",
    "delivered_at": "timestamptz",
    "completed_at": "timestamptz",
    "cancelled_at": "timestamptz",
}

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
        "price": "numeric",
        "total_price": "numeric",
        "selected_options": "jsonb",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        **SETTABLE,
    },
)

CHANGED_ORDERS = OverRows(
    {"uuid": "text", "version": "bigint", "updated_at": "timestamptz", "given": "bigint", **SETTABLE},
    "UPDATE orders SET version = held.version, updated_at = held.updated_at, "
    + ", ".join(
        f"{name} = CASE WHEN held.given & {1 << bit} <> 0 THEN held.{name} ELSE orders.{name} END"
        for bit, name in enumerate(SETTABLE)
    )
    + " FROM held WHERE orders.uuid = held.uuid",
)

# (uuid, status, n): an order placed before the batch moves by `n` in `status`, or (status NULL)
# in the status it has stored. Summed per key: one statement must not change a row twice.
MOVED_COUNTS = OverRows(
    {"uuid": "text", "status": "text", "n": "bigint"},
    "INSERT INTO order_counts (user_id, role, status, n) "
    "SELECT user_id, role, status, SUM(n) FROM ("
    "SELECT orders.buyer_id AS user_id, 'buyer' AS role, COALESCE(held.status, orders.status) AS status, held.n AS n "
    "FROM held JOIN orders ON orders.uuid = held.uuid "
    "UNION ALL SELECT orders.creator_id, 'creator', COALESCE(held.status, orders.status), held.n "
    "FROM held JOIN orders ON orders.uuid = held.uuid"
    ") AS change WHERE true GROUP BY user_id, role, status "
    "ON CONFLICT (user_id, role, status) DO UPDATE SET n = order_counts.n + excluded.n",
)

ADDED_COUNTS = OverRows(
    {"user_id": "bigint", "role": "text", "status": "text", "n": "bigint"},
    "INSERT INTO order_counts (user_id, role, status, n) SELECT user_id, role, status, n FROM held WHERE true "
    "ON CONFLICT (user_id, role, status) DO UPDATE SET n = order_counts.n + excluded.n",
)

NEW_DELIVERIES = OverRows(
    {"id": "bigint", "uuid": "text", "message": "text", "file_ids": "jsonb", "created_at": "timestamptz"},
    "INSERT INTO deliveries (id, order_id, message, file_ids, created_at) "
    "SELECT held.id, orders.id, held.message, held.file_ids, held.created_at FROM held "
    "JOIN orders ON orders.uuid = held.uuid",
)

NEW_DELIVERED_FILES = OverRows(
    {"file_id": "bigint", "uuid": "text"},
    "INSERT INTO delivered_files (file_id, order_id) SELECT held.file_id, orders.id FROM held "
    "JOIN orders ON orders.uuid = held.uuid WHERE true ON CONFLICT DO NOTHING",
)

NEW_REVIEWS = OverRows(
    {"id": "bigint", "uuid": "text", "rating": "bigint", "content": "text", "created_at": "timestamptz"},
    # Only the buyer reviews. The fields copied from the order are fixed when it is placed.
    "INSERT INTO reviews (id, order_id, creator_profile_id, reviewer_id, reviewer_username, service_id, "
    "service_title, rating, content, created_at) "
    "SELECT held.id, orders.id, orders.creator_profile_id, orders.buyer_id, orders.buyer_username, "
    "orders.service_id, orders.service_title, held.rating, held.content, held.created_at FROM held "
    "JOIN orders ON orders.uuid = held.uuid",
)


@dataclass
class _Changed:
    """What a batch's events set on an order placed before the batch."""

    version: int
    updated_at: datetime
    columns: dict[str, Any] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=list)  # every status set, in order

    def row(self, uuid: str) -> tuple[Any, ...]:
        given = sum(1 << bit for bit, name in enumerate(SETTABLE) if name in self.columns)
        return (uuid, self.version, self.updated_at, given, *(self.columns.get(name) for name in SETTABLE))

    def moved_counts(self, uuid: str) -> list[tuple[str, str | None, int]]:
        """Out of its stored status, through every status but the last (each key written, netting
        0), into the last."""
        if not self.statuses:
            return []
        moved: Counter[str] = Counter()
        for status in self.statuses[:-1]:
            moved[status] += 0
        moved[self.statuses[-1]] += 1
        return [(uuid, None, -1), *((uuid, status, n) for status, n in moved.items())]


class OrdersProjection(Projection):
    name = "orders"
    applications: ClassVar[tuple[str, ...]] = (Orders.name,)
    tables: ClassVar[tuple[str, ...]] = ("orders", "order_counts", "deliveries", "delivered_files", "reviews")

    def __init__(self) -> None:
        # The batch so far, by order uuid: orders placed in it (their rows, by column) and orders
        # placed before it; count changes of the former; rows of the other tables.
        self._placed: dict[str, dict[str, Any]] = {}
        self._changed: dict[str, _Changed] = {}
        self._counts: Counter[CountKey] = Counter()
        self._deliveries: list[tuple[Any, ...]] = []
        self._delivered_files: dict[tuple[int, str], None] = {}  # in order, once each
        self._reviews: list[tuple[Any, ...]] = []

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Order.Placed: self.placed,
            Order.Accepted: lambda cur, e: self._set(e, status=IN_PROGRESS),
            Order.Updated: lambda cur, e: self._set(e, **e.changes),
            Order.WorkDelivered: self.delivered,
            Order.RevisionRequested: lambda cur, e: self._set(e, status=IN_PROGRESS),
            Order.Completed: lambda cur, e: self._set(e, status=COMPLETED, completed_at=e.at),
            Order.AutoCompleted: lambda cur, e: self._set(e, status=COMPLETED, completed_at=e.at),
            Order.Cancelled: lambda cur, e: self._set(
                e, status=CANCELLED, cancelled_at=e.at, cancellation_reason=e.reason
            ),
            Order.Reviewed: self.reviewed,
        }

    def before_commit(self, cur: Cursor) -> None:
        try:
            MOVED_COUNTS.write(cur, [row for uuid, c in self._changed.items() for row in c.moved_counts(uuid)])
            add_order_counts(cur, self._counts)
            NEW_ORDER.write(cur, [tuple(row[name] for name in NEW_ORDER.columns) for row in self._placed.values()])
            CHANGED_ORDERS.write(cur, [changed.row(uuid) for uuid, changed in self._changed.items()])
            NEW_DELIVERIES.write(cur, self._deliveries)
            NEW_DELIVERED_FILES.write(cur, list(self._delivered_files))
            NEW_REVIEWS.write(cur, self._reviews)
        finally:
            self.aborted()

    def aborted(self) -> None:
        self._placed.clear()
        self._changed.clear()
        self._counts.clear()
        self._deliveries.clear()
        self._delivered_files.clear()
        self._reviews.clear()

    def placed(self, cur: Cursor, e: Order.Placed) -> None:
        self._placed[str(e.originator_id)] = {
            "id": e.number,
            "uuid": str(e.originator_id),
            "version": e.originator_version,
            "buyer_id": e.buyer,
            "buyer_username": e.buyer_username,
            "creator_id": e.creator,
            "creator_profile_id": e.creator_profile,
            "creator_username": e.creator_username,
            "service_id": e.service,
            "service_title": e.service_title,
            "price": e.price,
            "total_price": e.total_price,
            "selected_options": [_jsonable(option) for option in e.options],
            "created_at": e.at,
            "updated_at": e.at,
            **dict.fromkeys(SETTABLE),
            "status": PENDING,
            "requirements": e.requirements,
            "delivery_date": e.delivery_date,
        }
        self._counts.update(order_count_changes(e.buyer, e.creator, None, PENDING))

    def delivered(self, cur: Cursor, e: Order.WorkDelivered) -> None:
        self._set(e, status=DELIVERED, delivered_at=e.at)
        uuid = str(e.originator_id)
        self._deliveries.append((e.delivery, uuid, e.message, list(e.files), e.at))
        self._delivered_files.update(((file_id, uuid), None) for file_id in e.files)

    def reviewed(self, cur: Cursor, e: Order.Reviewed) -> None:
        self._set(e)
        self._reviews.append((e.review, str(e.originator_id), e.rating, e.content, e.at))

    def _set(self, e: Any, **columns: Any) -> None:
        """Fold `columns` and the event's version and time into what the batch writes for its order.

        A change of status also moves the order between its parties' counts: known here for an
        order placed in the batch, from its stored status (MOVED_COUNTS) for one placed before.
        """
        if unknown := set(columns) - set(SETTABLE):
            raise ValueError(f"{type(e).__name__} sets {sorted(unknown)}: no event of an order sets those")
        uuid = str(e.originator_id)
        placed = self._placed.get(uuid)
        if placed is not None:
            if "status" in columns:
                self._counts.update(
                    order_count_changes(placed["buyer_id"], placed["creator_id"], placed["status"], columns["status"])
                )
            placed.update(columns, version=e.originator_version, updated_at=e.at)
            return
        changed = self._changed.get(uuid)
        if changed is None:
            changed = self._changed[uuid] = _Changed(e.originator_version, e.at)
        changed.version, changed.updated_at = e.originator_version, e.at
        changed.columns.update(columns)
        if "status" in columns:
            changed.statuses.append(columns["status"])


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
    ADDED_COUNTS.write(cur, [(*key, delta) for key, delta in changes.items()])


def _jsonable(option: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if key == "price" else value for key, value in option.items()}
