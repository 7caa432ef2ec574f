"""Keeps `services`, the listing's one denormalised table, from the catalog log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from projections.base import Handler, Projection
from projections.held import OverRows, Writes
from readmodels.services import (
    CATALOG_LOG,
    LISTINGS_VERSION,
    ORDERS_LOG,
    PROJECTION,
    minor_units,
    search_grams,
    search_text,
)
from ugc.orders import Order
from ugc.platform.dialect import Cursor, Dialect
from ugc.services import Service


def _options(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Options as JSON: prices as decimal strings, since JSON columns hold no Decimal."""
    return [{**option, "price": str(option["price"])} for option in options]


class ListingsProjection(Projection):
    name = PROJECTION
    # 2: `service_grams`, the pieces short search terms are looked up in (GRAMS_VERSION);
    # 3: the search text folded with "ё" read as "е"; 4: and runs of whitespace as one space (LISTINGS_VERSION)
    version = LISTINGS_VERSION
    # Orders too: reviews set the creator's rating shown on their services (one row per creator).
    applications: ClassVar[tuple[str, ...]] = (CATALOG_LOG, ORDERS_LOG)
    tables: ClassVar[tuple[str, ...]] = ("services", "listing_creator_ratings", "service_grams")

    def __init__(self) -> None:
        # A batch's reviews summed per creator profile: [rating sum, count], added at the batch's end.
        self._reviews: dict[int, list[int]] = {}

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Service.Created: self.created,
            Service.Updated: self.updated,
            Service.Deactivated: self.deactivated,
            Order.Reviewed: self.reviewed,
        }

    def reviewed(self, cur: Cursor, e: Order.Reviewed) -> None:
        added = self._reviews.setdefault(int(e.creator_profile), [0, 0])
        added[0] += int(e.rating)
        added[1] += 1

    def held_writes(self, dialect: Dialect) -> Sequence[Writes]:
        reviews, self._reviews = self._reviews, {}
        return ([(REVIEWS_ADDED, [(profile, added[0], added[1]) for profile, added in reviews.items()])],)

    def aborted(self) -> None:
        self._reviews.clear()

    def created(self, cur: Cursor, e: Service.Created) -> None:
        # Every listed service's creator has a rating row (0 until reviewed), so the listing joins
        # rather than outer-joins. The two logs are followed separately: reviews may have made it first.
        cur.execute(
            "INSERT INTO listing_creator_ratings (creator_profile_id, rating_sum, rating_count, creator_rating_minor) "
            "VALUES (%s, 0, 0, 0) ON CONFLICT (creator_profile_id) DO NOTHING",
            (e.creator_profile_number,),
        )
        text = search_text(e.title, e.description)
        cur.execute(
            "INSERT INTO services (id, uuid, creator_profile_id, creator_user_id, creator_username, category_id, "
            "title, description, base_price, price_minor, delivery_time, options, tags, allows_modifications, "
            "modifications_price, is_active, created_at, updated_at, search_text, version) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.number,
                str(e.originator_id),
                e.creator_profile_number,
                e.creator_user_number,
                e.creator_username,
                e.category_number,
                e.title,
                e.description,
                e.base_price,
                minor_units(e.base_price),
                e.delivery_time,
                _options(e.options),
                list(e.tags),
                e.allows_modifications,
                e.modifications_price,
                True,
                e.at,
                e.at,
                text,
                e.originator_version,
            ),
        )
        _keep_grams(cur, e.number, text)

    def updated(self, cur: Cursor, e: Service.Updated) -> None:
        changes = dict(e.changes)
        columns: dict[str, object] = {"updated_at": e.at, "version": e.originator_version}
        for name in ("title", "description", "delivery_time", "allows_modifications", "modifications_price"):
            if name in changes:
                columns[name] = changes[name]
        if "category_number" in changes:
            columns["category_id"] = changes["category_number"]
        if "base_price" in changes:
            columns["base_price"] = changes["base_price"]
            columns["price_minor"] = minor_units(changes["base_price"])
        if "options" in changes:
            columns["options"] = _options(changes["options"])
        if "tags" in changes:
            columns["tags"] = list(changes["tags"])
        if "title" in changes or "description" in changes:
            row = cur.execute(
                "SELECT id, title, description FROM services WHERE uuid = %s", (str(e.originator_id),)
            ).fetchone()
            assert row is not None, f"service {e.originator_id} updated before it was created"
            current = {**row, **changes}
            text = search_text(current["title"], current["description"])
            columns["search_text"] = text
            _keep_grams(cur, int(row["id"]), text)
        _update(cur, e, columns)

    def deactivated(self, cur: Cursor, e: Service.Deactivated) -> None:
        _update(cur, e, {"is_active": False, "updated_at": e.at, "version": e.originator_version})


def _keep_grams(cur: Cursor, service: int, text: str) -> None:
    """Store the pieces of the service's search text for short search terms (PostgreSQL's alone)."""
    if cur.dialect == "postgresql":
        cur.execute(
            "INSERT INTO service_grams (id, grams) VALUES (%s, %s) "
            "ON CONFLICT (id) DO UPDATE SET grams = excluded.grams",
            (service, search_grams(text)),
        )


def _update(cur: Cursor, e: Service.Event, columns: Mapping[str, object]) -> None:
    """Set `columns` (names fixed in this module, never from input) on the event's row."""
    assignments = ", ".join(f"{column} = %s" for column in columns)
    cur.execute(f"UPDATE services SET {assignments} WHERE uuid = %s", (*columns.values(), str(e.originator_id)))


# A batch's reviews, summed per creator, counted in each creator's one row; the listing joins it to
# their services. The mean in hundredths, rounded half up, in integer arithmetic both dialects do
# alike: round(100 * sum / count) = (200 * sum + count) div (2 * count), from the new sums, as one
# review at a time would leave it. No answer is read back: no round trip in a pipelined batch.
REVIEWS_ADDED = OverRows(
    {"creator_profile_id": "bigint", "rating_sum": "bigint", "rating_count": "bigint"},
    "INSERT INTO listing_creator_ratings (creator_profile_id, rating_sum, rating_count, creator_rating_minor) "
    "SELECT creator_profile_id, rating_sum, rating_count, (rating_sum * 200 + rating_count) / (2 * rating_count) "
    "FROM added WHERE true ON CONFLICT (creator_profile_id) DO UPDATE SET "
    "rating_sum = listing_creator_ratings.rating_sum + excluded.rating_sum, "
    "rating_count = listing_creator_ratings.rating_count + excluded.rating_count, "
    "creator_rating_minor = ((listing_creator_ratings.rating_sum + excluded.rating_sum) * 200 "
    "+ listing_creator_ratings.rating_count + excluded.rating_count) "
    "/ (2 * (listing_creator_ratings.rating_count + excluded.rating_count))",
    "added",
)
