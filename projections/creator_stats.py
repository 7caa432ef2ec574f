"""Keeps `creator_stats`: each creator's mean review rating and completed orders."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
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
        profile = self._profile(cur, e)
        row = cur.execute(
            "SELECT rating_sum, rating_count FROM creator_stats WHERE creator_profile_id = %s", (profile,)
        ).fetchone()
        assert row is not None
        total, count = int(row["rating_sum"]) + e.rating, int(row["rating_count"]) + 1
        mean = (Decimal(total) / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        cur.execute(
            "UPDATE creator_stats SET rating_sum = %s, rating_count = %s, rating = %s WHERE creator_profile_id = %s",
            (total, count, mean, profile),
        )

    def _profile(self, cur: Cursor, e: Order.Event) -> int:
        self._placed.write(cur)
        row = cur.execute(
            "SELECT creator_profile_id FROM creator_stats_orders WHERE order_uuid = %s", (str(e.originator_id),)
        ).fetchone()
        assert row is not None, f"no placed order {e.originator_id}"
        return int(row["creator_profile_id"])
