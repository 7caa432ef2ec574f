"""Keeps `portfolio_items`, `portfolio_images` and `portfolio_media` from the catalog log.

An item's row embeds its images (re-read from `portfolio_images` after each image event), so a
page of items is one query. `portfolio_media` holds exactly the keys of live covers and images:
the public media route serves nothing else. `portfolio_counts` moves with every item and image
stored or deleted: one upsert of two rows, the creator's and every creator's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from readmodels.portfolio import EVERY_CREATOR
from ugc.platform.dialect import Cursor, Row
from ugc.platform.store import Catalog
from ugc.portfolio import PortfolioImage, PortfolioItem

# Image event field -> portfolio_images column.
_IMAGE_COLUMNS = {"caption": "caption", "order": "sort_order", "image_key": "image_key"}


class PortfolioProjection(Projection):
    name = "portfolio"
    applications: ClassVar[tuple[str, ...]] = (Catalog.name,)
    tables: ClassVar[tuple[str, ...]] = ("portfolio_items", "portfolio_images", "portfolio_media", "portfolio_counts")

    def handlers(self) -> Mapping[type, Handler]:
        return {
            PortfolioItem.Created: self.item_created,
            PortfolioItem.Updated: self.item_updated,
            PortfolioItem.Deleted: self.item_deleted,
            PortfolioItem.ImageAttached: self.image_attached,
            PortfolioImage.Added: self.image_added,
            PortfolioImage.Updated: self.image_updated,
            PortfolioImage.Removed: self.image_removed,
        }

    def item_created(self, cur: Cursor, e: PortfolioItem.Created) -> None:
        cur.execute(
            "INSERT INTO portfolio_items (id, uuid, creator_profile_id, version, title, description, cover_key, "
            "images, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.number,
                str(e.originator_id),
                e.creator_profile,
                e.originator_version,
                e.title,
                e.description,
                e.cover_key,
                [],
                e.at,
                e.at,
            ),
        )
        _publish(cur, e.cover_key, e.cover_content_type)
        _count(cur, e.creator_profile, items=1)

    def item_updated(self, cur: Cursor, e: PortfolioItem.Updated) -> None:
        uuid = str(e.originator_id)
        if "cover_key" in e.changes:
            row = cur.execute("SELECT cover_key FROM portfolio_items WHERE uuid = %s", (uuid,)).fetchone()
            if row is not None:
                _unpublish(cur, [row["cover_key"]])
            _publish(cur, e.changes["cover_key"], e.changes["cover_content_type"])
        changes = {k: v for k, v in e.changes.items() if k in ("title", "description", "cover_key")}
        columns = "".join(f"{column} = %s, " for column in changes)
        cur.execute(
            f"UPDATE portfolio_items SET {columns}updated_at = %s, version = %s WHERE uuid = %s",
            (*changes.values(), e.at, e.originator_version, uuid),
        )

    def item_deleted(self, cur: Cursor, e: PortfolioItem.Deleted) -> None:
        item = cur.execute(
            "SELECT id, creator_profile_id, cover_key FROM portfolio_items WHERE uuid = %s", (str(e.originator_id),)
        ).fetchone()
        if item is None:
            return
        images = cur.execute(
            "SELECT image_key FROM portfolio_images WHERE portfolio_item_id = %s", (item["id"],)
        ).fetchall()
        _unpublish(cur, [item["cover_key"], *(row["image_key"] for row in images)])
        cur.execute("DELETE FROM portfolio_images WHERE portfolio_item_id = %s", (item["id"],))
        cur.execute("DELETE FROM portfolio_items WHERE id = %s", (item["id"],))
        _count(cur, item["creator_profile_id"], items=-1, images=-len(images))

    def image_attached(self, cur: Cursor, e: PortfolioItem.ImageAttached) -> None:
        """The item's version moved (its ETag): the image itself comes with `image_added`."""
        cur.execute(
            "UPDATE portfolio_items SET version = %s WHERE uuid = %s", (e.originator_version, str(e.originator_id))
        )

    def image_added(self, cur: Cursor, e: PortfolioImage.Added) -> None:
        # Before images were recorded on their item too, an item could be deleted while an image
        # was added to it (two appends): then the image never shows, as the write side treats it.
        item = cur.execute(
            "SELECT creator_profile_id FROM portfolio_items WHERE id = %s", (e.portfolio_item,)
        ).fetchone()
        if item is None:
            return
        cur.execute(
            "INSERT INTO portfolio_images (id, uuid, portfolio_item_id, version, image_key, caption, sort_order) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (e.number, str(e.originator_id), e.portfolio_item, e.originator_version, e.image_key, e.caption, e.order),
        )
        _publish(cur, e.image_key, e.content_type)
        _embed_images(cur, e.portfolio_item)
        _count(cur, item["creator_profile_id"], images=1)

    def image_updated(self, cur: Cursor, e: PortfolioImage.Updated) -> None:
        image = _image(cur, e)
        if image is None:
            return
        if "image_key" in e.changes:
            _unpublish(cur, [image["image_key"]])
            _publish(cur, e.changes["image_key"], e.changes["content_type"])
        changes = {_IMAGE_COLUMNS[k]: v for k, v in e.changes.items() if k in _IMAGE_COLUMNS}
        changes["version"] = e.originator_version
        columns = ", ".join(f"{column} = %s" for column in changes)
        cur.execute(f"UPDATE portfolio_images SET {columns} WHERE id = %s", (*changes.values(), image["id"]))
        _embed_images(cur, image["portfolio_item_id"])

    def image_removed(self, cur: Cursor, e: PortfolioImage.Removed) -> None:
        image = _image(cur, e)
        if image is None:
            return
        _unpublish(cur, [image["image_key"]])
        cur.execute("DELETE FROM portfolio_images WHERE id = %s", (image["id"],))
        _embed_images(cur, image["portfolio_item_id"])
        _count(cur, image["creator_profile_id"], images=-1)


def _image(cur: Cursor, e: PortfolioImage.Event) -> Row | None:
    return cur.execute(
        "SELECT m.id, m.portfolio_item_id, m.image_key, i.creator_profile_id FROM portfolio_images m "
        "JOIN portfolio_items i ON i.id = m.portfolio_item_id WHERE m.uuid = %s",
        (str(e.originator_id),),
    ).fetchone()


def _count(cur: Cursor, creator_profile_id: int, *, items: int = 0, images: int = 0) -> None:
    """Move the creator's counts and every creator's by `items` and `images`."""
    cur.execute(
        "INSERT INTO portfolio_counts (creator_profile_id, items, images) VALUES (%s, %s, %s), (%s, %s, %s) "
        "ON CONFLICT (creator_profile_id) DO UPDATE SET items = portfolio_counts.items + excluded.items, "
        "images = portfolio_counts.images + excluded.images",
        (creator_profile_id, items, images, EVERY_CREATOR, items, images),
    )


def _embed_images(cur: Cursor, item_id: object) -> None:
    """Copy the item's images, in display order, into its row."""
    rows = cur.execute(
        "SELECT id, image_key, caption, sort_order FROM portfolio_images WHERE portfolio_item_id = %s "
        "ORDER BY sort_order, id",
        (item_id,),
    ).fetchall()
    images = [{"id": r["id"], "key": r["image_key"], "caption": r["caption"], "order": r["sort_order"]} for r in rows]
    cur.execute("UPDATE portfolio_items SET images = %s WHERE id = %s", (images, item_id))


def _publish(cur: Cursor, key: str, content_type: str) -> None:
    cur.execute("INSERT INTO portfolio_media (key, content_type) VALUES (%s, %s)", (key, content_type))


def _unpublish(cur: Cursor, keys: list[str]) -> None:
    for key in keys:
        cur.execute("DELETE FROM portfolio_media WHERE key = %s", (key,))
