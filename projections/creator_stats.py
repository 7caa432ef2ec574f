"""Keeps `creator_stats`: each creator's mean review rating and completed orders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from projections.base import Handler, Projection
from projections.held import HeldInserts, Insert, OverRows, Writes
from ugc.orders import Order
from ugc.platform.dialect import Cursor, Dialect
from ugc.platform.store import Orders

# An order's completions and reviews in a batch, added to its creator's row at the batch's end.
ORDER_CHANGE = {"order_uuid": "text", "completed": "bigint", "rating_sum": "bigint", "rating_count": "bigint"}
ORDER_OF_PROFILE = Insert("creator_stats_orders", {"order_uuid": "text", "creator_profile_id": "bigint"})
PROFILE = Insert("creator_stats", {"creator_profile_id": "bigint"}, "ON CONFLICT (creator_profile_id) DO NOTHING")


class CreatorStatsProjection(Projection):
    """Counts per creator profile; the profile of an order is in its Placed event, remembered here.

    A batch costs the same few statements however many events it holds: its new orders are written
    together, then its completions and reviews are summed per order and added to their creators'
    rows in one UPDATE (the mean from the new sums, as one review at a time would leave it).
    """

    name = "creator_stats"
    applications: ClassVar[tuple[str, ...]] = (Orders.name,)
    tables: ClassVar[tuple[str, ...]] = ("creator_stats", "creator_stats_orders")

    def __init__(self) -> None:
        self._placed = HeldInserts()  # a batch's new orders, written before its changes are added
        self._changes: dict[str, list[int]] = {}  # order uuid -> [completed, rating sum, rating count]

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Order.Placed: self.placed,
            Order.Completed: self.completed,
            Order.AutoCompleted: self.completed,
            Order.Reviewed: self.reviewed,
        }

    def held_writes(self, dialect: Dialect) -> Sequence[Writes]:
        """The new orders' profiles, then the changes, which read them."""
        changes, self._changes = self._changes, {}
        return self._placed.taken(), [(CHANGES[dialect], [(uuid, *change) for uuid, change in changes.items()])]

    def aborted(self) -> None:
        self._placed.clear()
        self._changes.clear()

    def placed(self, cur: Cursor, e: Order.Placed) -> None:
        self._placed.add(ORDER_OF_PROFILE, (str(e.originator_id), e.creator_profile))
        self._placed.add(PROFILE, (e.creator_profile,))

    def completed(self, cur: Cursor, e: Order.Completed | Order.AutoCompleted) -> None:
        self._changes.setdefault(str(e.originator_id), [0, 0, 0])[0] += 1

    def reviewed(self, cur: Cursor, e: Order.Reviewed) -> None:
        change = self._changes.setdefault(str(e.originator_id), [0, 0, 0])
        change[1] += int(e.rating)
        change[2] += 1


def _add_changes(dialect: Dialect) -> OverRows:
    """Each order's completions and reviews added to its creator's row, and the mean set from the
    new sums: one statement per batch (per run of rows on SQLite), which reads nothing back."""
    return OverRows(
        ORDER_CHANGE,
        "UPDATE creator_stats SET "
        "completed_orders = creator_stats.completed_orders + c.added_completed, "
        "rating_sum = creator_stats.rating_sum + c.added_sum, "
        "rating_count = creator_stats.rating_count + c.added_count, "
        f"rating = CASE WHEN c.added_count > 0 THEN {_mean(dialect)} ELSE creator_stats.rating END "
        "FROM (SELECT o.creator_profile_id, CAST(SUM(changes.completed) AS BIGINT) AS added_completed, "
        "CAST(SUM(changes.rating_sum) AS BIGINT) AS added_sum, "
        "CAST(SUM(changes.rating_count) AS BIGINT) AS added_count "
        "FROM changes JOIN creator_stats_orders o ON o.order_uuid = changes.order_uuid "
        "GROUP BY o.creator_profile_id) AS c "
        "WHERE creator_stats.creator_profile_id = c.creator_profile_id",
        "changes",
    )


def _mean(dialect: Dialect) -> str:
    """SQL for the mean rating once the batch's reviews are counted (as an `UPDATE ... SET` sees the
    old row, `c` the batch's sums), to two decimals rounded half up: round(100 * sum / count) =
    (200 * sum + count) div (2 * count) in integers, then shown as the exact amount."""
    hundredths = (
        "((creator_stats.rating_sum + c.added_sum) * 200 + creator_stats.rating_count + c.added_count) "
        "/ (2 * (creator_stats.rating_count + c.added_count))"
    )
    if dialect == "postgresql":
        return f"CAST({hundredths} AS NUMERIC(14, 2)) / 100"
    # SQLite keeps {money} as decimal text: whole part, a point, two digits.
    return (
        f"CAST({hundredths} / 100 AS TEXT) || '.' || "
        f"substr('0' || CAST({hundredths} - {hundredths} / 100 * 100 AS TEXT), -2, 2)"
    )


CHANGES: dict[Dialect, OverRows] = {"postgresql": _add_changes("postgresql"), "sqlite": _add_changes("sqlite")}
