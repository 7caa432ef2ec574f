"""Keeps `creator_stats`: each creator's mean review rating and completed orders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from projections.held import HeldInserts, Insert
from ugc.orders import Order
from ugc.platform.dialect import Cursor
from ugc.platform.store import Orders

ORDER_OF_PROFILE = Insert("creator_stats_orders", {"order_uuid": "text", "creator_profile_id": "bigint"})
PROFILE = Insert("creator_stats", {"creator_profile_id": "bigint"}, "ON CONFLICT (creator_profile_id) DO NOTHING")


class CreatorStatsProjection(Projection):
    """Counts per creator profile; the profile of an order is in its Placed event, remembered here."""

    name = "creator_stats"
    applications: ClassVar[tuple[str, ...]] = (Orders.name,)
    tables: ClassVar[tuple[str, ...]] = ("creator_stats", "creator_stats_orders")

    def __init__(self) -> None:
        self._placed = HeldInserts()  # a batch's new orders, written before any is completed or reviewed

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Order.Placed: self.placed,
            Order.Completed: self.completed,
            Order.AutoCompleted: self.completed,
            Order.Reviewed: self.reviewed,
        }

    def before_commit(self, cur: Cursor) -> None:
        self._placed.write(cur)

    def aborted(self) -> None:
        self._placed.clear()

    def placed(self, cur: Cursor, e: Order.Placed) -> None:
        self._placed.add(ORDER_OF_PROFILE, (str(e.originator_id), e.creator_profile))
        self._placed.add(PROFILE, (e.creator_profile,))

    def completed(self, cur: Cursor, e: Order.Completed | Order.AutoCompleted) -> None:
        self._placed.write(cur)
        cur.execute(
            "UPDATE creator_stats SET completed_orders = completed_orders + 1 WHERE creator_profile_id = "
            "(SELECT creator_profile_id FROM creator_stats_orders WHERE order_uuid = %s)",
            (str(e.originator_id),),
        )

    def reviewed(self, cur: Cursor, e: Order.Reviewed) -> None:
        """Count the review and set the mean in one statement that reads nothing back: in a
        pipelined batch it costs no round trip (reading the sums first cost two per review)."""
        self._placed.write(cur)
        cur.execute(
            "UPDATE creator_stats SET rating_sum = rating_sum + %s, rating_count = rating_count + 1, "
            f"rating = {_mean(cur.dialect, int(e.rating))} WHERE creator_profile_id = "
            "(SELECT creator_profile_id FROM creator_stats_orders WHERE order_uuid = %s)",
            (e.rating, str(e.originator_id)),
        )


def _mean(dialect: str, rating: int) -> str:
    """SQL for the mean rating once `rating` is counted (as an `UPDATE ... SET` sees the old row),
    to two decimals rounded half up: round(100 * sum / count) = (200 * sum + count) div (2 * count)
    in integers, then shown as the exact amount (`rating` is an int, so it is a literal here)."""
    hundredths = f"((rating_sum + {rating}) * 200 + rating_count + 1) / (2 * (rating_count + 1))"
    if dialect == "postgresql":
        return f"CAST({hundredths} AS NUMERIC(14, 2)) / 100"
    # SQLite keeps {money} as decimal text: whole part, a point, two digits.
    return (
        f"CAST({hundredths} / 100 AS TEXT) || '.' || "
        f"substr('0' || CAST({hundredths} - {hundredths} / 100 * 100 AS TEXT), -2, 2)"
    )
