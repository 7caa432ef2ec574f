"""Queries on portfolios (kept by `projections/portfolio.py`).

`portfolio_items.images` holds each item's images, already ordered, so a page of items with
their images is one query. `portfolio_media` lists the media keys that may be served publicly
(covers and images of live items) with their sniffed types; no other stored file is public.
"""

from __future__ import annotations

from readmodels.pages import PageQuery, PageRequest
from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS portfolio_items (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        creator_profile_id BIGINT NOT NULL,
        version BIGINT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        cover_key TEXT NOT NULL,
        images {json} NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS portfolio_items_by_profile ON portfolio_items (creator_profile_id, created_at, id)",
    "CREATE INDEX IF NOT EXISTS portfolio_items_by_time ON portfolio_items (created_at, id)",
    """CREATE TABLE IF NOT EXISTS portfolio_images (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        portfolio_item_id BIGINT NOT NULL,
        version BIGINT NOT NULL,
        image_key TEXT NOT NULL,
        caption TEXT NOT NULL,
        sort_order INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS portfolio_images_by_item ON portfolio_images (portfolio_item_id, sort_order, id)",
    """CREATE TABLE IF NOT EXISTS portfolio_media (
        key TEXT PRIMARY KEY,
        content_type TEXT NOT NULL)""",
)

_ITEM = (
    "SELECT id, version, creator_profile_id, title, description, cover_key, images, created_at, updated_at "
    "FROM portfolio_items"
)
_IMAGE = "SELECT id, version, portfolio_item_id, image_key, caption, sort_order FROM portfolio_images"


def list_portfolio_items(page: PageRequest, creator_profile_id: int | None = None) -> PageQuery:
    """Newest first."""
    where, params = "", []
    if creator_profile_id is not None:
        where, params = " WHERE creator_profile_id = %s", [creator_profile_id]
    return PageQuery(
        page,
        (f"SELECT COUNT(*) AS n FROM portfolio_items{where}", params),
        (f"{_ITEM}{where} ORDER BY created_at DESC, id DESC", params),
    )


def portfolio_of_creator(db: Database, creator_profile_id: int) -> list[Row]:
    with db.read() as cur:
        return cur.execute(
            f"{_ITEM} WHERE creator_profile_id = %s ORDER BY created_at DESC, id DESC", (creator_profile_id,)
        ).fetchall()


def get_portfolio_item(db: Database, item_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"{_ITEM} WHERE id = %s", (item_id,)).fetchone()


def portfolio_item_images(db: Database, item_id: int) -> Row:
    """`images` of the item as its row holds them now: none once the item is deleted."""
    row = get_portfolio_item(db, item_id)
    return {"images": [] if row is None else row["images"]}


def list_portfolio_images(page: PageRequest, portfolio_item_id: int | None = None) -> PageQuery:
    """In the order the creator gave (`order`, then id), item by item."""
    where, params = "", []
    if portfolio_item_id is not None:
        where, params = " WHERE portfolio_item_id = %s", [portfolio_item_id]
    return PageQuery(
        page,
        (f"SELECT COUNT(*) AS n FROM portfolio_images{where}", params),
        (f"{_IMAGE}{where} ORDER BY portfolio_item_id, sort_order, id", params),
    )


def public_media_type(db: Database, key: str) -> str | None:
    """The content type of a publicly served portfolio image, None if `key` is not one."""
    with db.read() as cur:
        row = cur.execute("SELECT content_type FROM portfolio_media WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row["content_type"])
