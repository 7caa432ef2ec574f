"""Keeps `orders`, `deliveries` and `reviews` from the orders log.

A batch is applied set-based, by the live runner and a replay alike: the handlers only fold each
event into what the batch holds per order, and `before_commit` writes it all with a fixed number of
statements, however many events the batch has (each an INSERT … SELECT or UPDATE … FROM over the
batch's rows, see `OverRows`):

1. the count changes, in one upsert: of the orders placed before the batch, from their stored
   status (read before 3 sets it), and of the orders placed in the batch, known in memory;
2. the orders placed in the batch, each inserted once with the columns its later events set;
3. the orders placed before the batch, each updated once with what its events set;
4. deliveries, delivered files and reviews, each taking its order's id (and a review the order's
   fields) from the `orders` rows as 2 and 3 left them, and the reviews' counts per creator.

1-3 are one phase of `held_writes` and 4 another: on PostgreSQL each phase is one statement,
with the phases of the other projections of the batch (`base.end_batch`).

What the tables hold afterwards is what applying the events one by one held (tests/test_replay.py
and the other rebuild == live tests): an event of an order that is not in `orders` (its placing
parked or skipped) changes nothing, and every count an order moved through keeps its row, with 0
when its changes cancel out (a status an order of the user ever had keeps its row, whether the
events came one by one or in one batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, ClassVar

from projections.base import Handler, Projection
from projections.held import Insert, OverRows, Writes
from readmodels.orders import EVERY_ORDER
from ugc.orders import CANCELLED, COMPLETED, DELIVERED, IN_PROGRESS, PENDING, Order
from ugc.platform.dialect import Cursor, Dialect
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
    + " FROM changed AS held WHERE orders.uuid = held.uuid",
    "changed",
)

# Count changes, summed per key (one statement must not change a row twice), from two kinds of row:
# (uuid, NULL, NULL, status, n), an order placed before the batch that moves by `n` in `status`,
# or (status NULL) in the status it has stored, for both its parties and every order's total
# (`EVERY_ORDER`); and (NULL, user id, role, status, n), the counts of the orders placed in the
# batch, whose parties are known in memory.
COUNTS = OverRows(
    {"uuid": "text", "user_id": "bigint", "role": "text", "status": "text", "n": "bigint"},
    "INSERT INTO order_counts (user_id, role, status, n) "
    "SELECT user_id, role, status, SUM(n) FROM ("
    "SELECT CASE party.role WHEN 'buyer' THEN orders.buyer_id WHEN 'creator' THEN orders.creator_id "
    f"ELSE {EVERY_ORDER[0]} END AS user_id, "
    "party.role AS role, COALESCE(held.status, orders.status) AS status, held.n AS n "
    "FROM counts AS held JOIN orders ON orders.uuid = held.uuid "
    f"CROSS JOIN (SELECT 'buyer' AS role UNION ALL SELECT 'creator' UNION ALL SELECT '{EVERY_ORDER[1]}') AS party "
    "UNION ALL SELECT user_id, role, status, n FROM counts WHERE uuid IS NULL"
    ") AS change WHERE true GROUP BY user_id, role, status "
    "ON CONFLICT (user_id, role, status) DO UPDATE SET n = order_counts.n + excluded.n",
    "counts",
)

NEW_DELIVERIES = OverRows(
    {"id": "bigint", "uuid": "text", "message": "text", "file_ids": "jsonb", "created_at": "timestamptz"},
    "INSERT INTO deliveries (id, order_id, message, file_ids, created_at) "
    "SELECT held.id, orders.id, held.message, held.file_ids, held.created_at FROM new_deliveries AS held "
    "JOIN orders ON orders.uuid = held.uuid",
    "new_deliveries",
)

NEW_DELIVERED_FILES = OverRows(
    {"file_id": "bigint", "uuid": "text"},
    "INSERT INTO delivered_files (file_id, order_id) SELECT held.file_id, orders.id FROM new_delivered_files AS held "
    "JOIN orders ON orders.uuid = held.uuid WHERE true ON CONFLICT DO NOTHING",
    "new_delivered_files",
)

NEW_REVIEWS = OverRows(
    {"id": "bigint", "uuid": "text", "rating": "bigint", "content": "text", "created_at": "timestamptz"},
    # Only the buyer reviews. The fields copied from the order are fixed when it is placed.
    "INSERT INTO reviews (id, order_id, creator_profile_id, reviewer_id, reviewer_username, service_id, "
    "service_title, rating, content, created_at) "
    "SELECT held.id, orders.id, orders.creator_profile_id, orders.buyer_id, orders.buyer_username, "
    "orders.service_id, orders.service_title, held.rating, held.content, held.created_at FROM new_reviews AS held "
    "JOIN orders ON orders.uuid = held.uuid",
    "new_reviews",
)

# The batch's reviews (NEW_REVIEWS' rows) added to their creators' counts.
REVIEW_COUNTS = OverRows(
    NEW_REVIEWS.columns,
    "INSERT INTO review_counts (creator_profile_id, n) "
    "SELECT orders.creator_profile_id, COUNT(*) FROM counted_reviews AS held JOIN orders ON orders.uuid = held.uuid "
    "WHERE true GROUP BY orders.creator_profile_id "  # WHERE: SQLite's parser, as in COUNTS
    "ON CONFLICT (creator_profile_id) DO UPDATE SET n = review_counts.n + excluded.n",
    "counted_reviews",
)


class OrdersProjection(Projection):
    name = "orders"
    applications: ClassVar[tuple[str, ...]] = (Orders.name,)
    tables: ClassVar[tuple[str, ...]] = (
        "orders",
        "order_counts",
        "deliveries",
        "delivered_files",
        "reviews",
        "review_counts",
    )
    indexed_after_replay = True  # orders by id and uuid, the others by their keys

    def __init__(self) -> None:
        # The batch so far, by order uuid: the rows of the orders placed in it; what it sets on
        # orders placed before it (with `version` and `updated_at`); every status each order was
        # set to, in order (a new order's from `pending`); the rows of the other tables.
        self._new: dict[str, dict[str, Any]] = {}
        self._changed: dict[str, dict[str, Any]] = {}
        self._statuses: dict[str, list[str]] = {}
        self._deliveries: list[tuple[Any, ...]] = []
        self._delivered_files: dict[tuple[int, str], None] = {}  # in order, once each
        self._reviews: list[tuple[Any, ...]] = []

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Order.Placed: self.placed,
            Order.Accepted: lambda cur, e: self._set(e, status=IN_PROGRESS),
            Order.Updated: self.updated,
            Order.WorkDelivered: self.delivered,
            Order.RevisionRequested: lambda cur, e: self._set(e, status=IN_PROGRESS),
            Order.Completed: lambda cur, e: self._set(e, status=COMPLETED, completed_at=e.at),
            Order.AutoCompleted: lambda cur, e: self._set(e, status=COMPLETED, completed_at=e.at),
            Order.Cancelled: lambda cur, e: self._set(
                e, status=CANCELLED, cancelled_at=e.at, cancellation_reason=e.reason
            ),
            Order.Reviewed: self.reviewed,
        }

    def held_writes(self, dialect: Dialect) -> Sequence[Writes]:
        """The counts read the statuses stored before the batch, which CHANGED_ORDERS sets: in the same
        phase (one snapshot, or before it). The deliveries and reviews read the orders as both left them."""
        # COUNTS rows: each order placed before the batch by its uuid, the batch's own by party.
        counts: list[tuple[str | int | None, ...]] = []
        added: dict[CountKey, int] = {}
        for uuid, statuses in self._statuses.items():
            # Through every status but the last (each key written, netting 0), into the last.
            passed = dict.fromkeys(statuses, 0)
            passed[statuses[-1]] = 1
            new = self._new.get(uuid)
            if new is None:  # out of the status it has stored
                counts.append((uuid, None, None, None, -1))
                counts += ((uuid, None, None, status, n) for status, n in passed.items())
                continue
            for status, n in passed.items():
                for key in (
                    (new["buyer_id"], "buyer", status),
                    (new["creator_id"], "creator", status),
                    (*EVERY_ORDER, status),
                ):
                    added[key] = added.get(key, 0) + n
        counts += ((None, *key, n) for key, n in added.items())
        return (
            [
                (COUNTS, counts),
                (NEW_ORDER.over_rows, [_new_order_row(row) for row in self._new.values()]),
                (CHANGED_ORDERS, [_changed_row(uuid, changed) for uuid, changed in self._changed.items()]),
            ],
            [
                (NEW_DELIVERIES, list(self._deliveries)),
                (NEW_DELIVERED_FILES, list(self._delivered_files)),
                (NEW_REVIEWS, list(self._reviews)),
                (REVIEW_COUNTS, list(self._reviews)),
            ],
        )

    def before_commit(self, cur: Cursor) -> None:
        self.aborted()  # everything the batch held is written (`held_writes`)

    def aborted(self) -> None:
        self._new.clear()
        self._changed.clear()
        self._statuses.clear()
        self._deliveries.clear()
        self._delivered_files.clear()
        self._reviews.clear()

    def placed(self, cur: Cursor, e: Order.Placed) -> None:
        uuid = str(e.originator_id)
        self._new[uuid] = {
            "id": e.number,
            "uuid": uuid,
            "version": e.originator_version,
            "buyer_id": e.buyer,
            "buyer_username": e.buyer_username,
            "creator_id": e.creator,
            "creator_profile_id": e.creator_profile,
            "creator_username": e.creator_username,
            "service_id": e.service,
            "service_title": e.service_title,
            # Decimals as their text, as both dialects take them (orjson would call back for each).
            "price": str(e.price),
            "total_price": str(e.total_price),
            "selected_options": [_jsonable(option) for option in e.options],
            "created_at": e.at,
            "updated_at": e.at,
            **dict.fromkeys(SETTABLE),
            "status": PENDING,
            "requirements": e.requirements,
            "delivery_date": e.delivery_date,
        }
        self._statuses[uuid] = [PENDING]

    def updated(self, cur: Cursor, e: Order.Updated) -> None:
        if not e.changes.keys() <= SETTABLE.keys():
            raise ValueError(f"Updated changes {sorted(e.changes)}: events after placing set {list(SETTABLE)}")
        self._set(e, **e.changes)

    def delivered(self, cur: Cursor, e: Order.WorkDelivered) -> None:
        uuid = self._set(e, status=DELIVERED, delivered_at=e.at)
        self._deliveries.append((e.delivery, uuid, e.message, list(e.files), e.at))
        self._delivered_files.update(((file_id, uuid), None) for file_id in e.files)

    def reviewed(self, cur: Cursor, e: Order.Reviewed) -> None:
        uuid = self._set(e)
        self._reviews.append((e.review, uuid, e.rating, e.content, e.at))

    def _set(self, e: Any, **columns: Any) -> str:
        """Fold `columns` and the event's version and time into what the batch writes for its order
        (the order's uuid). A change of status also moves the order between its parties' counts."""
        uuid = str(e.originator_id)
        order = self._new.get(uuid)
        if order is None:
            order = self._changed.setdefault(uuid, {})
        order.update(columns, version=e.originator_version, updated_at=e.at)
        if "status" in columns:
            self._statuses.setdefault(uuid, []).append(columns["status"])
        return uuid


_new_order_row = itemgetter(*NEW_ORDER.columns)  # a NEW_ORDER row of a new order's columns


def _changed_row(uuid: str, changed: Mapping[str, Any]) -> tuple[Any, ...]:
    """The CHANGED_ORDERS row of what a batch set on an order placed before it."""
    given = sum(1 << bit for bit, name in enumerate(SETTABLE) if name in changed)
    return (uuid, changed["version"], changed["updated_at"], given, *(changed.get(name) for name in SETTABLE))


def _jsonable(option: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if key == "price" else value for key, value in option.items()}
