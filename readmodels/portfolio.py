"""Queries on portfolios (kept by `projections/portfolio.py`).

`portfolio_items.images` holds each item's images, already ordered, so a page of items with
their images is one query. `portfolio_media` lists the media keys that may be served publicly
(covers and images of live items) with their sniffed types; no other stored file is public.

The lists' totals are kept by the projection in `portfolio_counts`, beside the rows they count: a
creator's items and images, and every creator's under `EVERY_CREATOR`. A page reads one row of it,
where a COUNT read every item of the catalogue for the public list without a filter (20,000 items:
337 buffers, 60,000 images: 618; a creator's 5,000 items: 128) and grew with it.
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
    """CREATE TABLE IF NOT EXISTS portfolio_counts (
        creator_profile_id BIGINT PRIMARY KEY,
        items BIGINT NOT NULL,
        images BIGINT NOT NULL)""",
    # Filled from the items and images once, where a database from before this table has some but no
    # counts: every item stored since is counted with it, so the table is never empty while items exist.
    """INSERT INTO portfolio_counts (creator_profile_id, items, images)
        SELECT creator_profile_id, SUM(items), SUM(images) FROM (
            SELECT i.creator_profile_id, 1 AS items,
                (SELECT COUNT(*) FROM portfolio_images m WHERE m.portfolio_item_id = i.id) AS images
            FROM portfolio_items i WHERE NOT EXISTS (SELECT 1 FROM portfolio_counts)) AS counted
        GROUP BY creator_profile_id
        UNION ALL
        SELECT 0, (SELECT COUNT(*) FROM portfolio_items), (SELECT COUNT(*) FROM portfolio_images)
        WHERE NOT EXISTS (SELECT 1 FROM portfolio_counts) AND EXISTS (SELECT 1 FROM portfolio_items)""",
)

# The `portfolio_counts` row of every creator's items and images together (profile ids start at 1).
EVERY_CREATOR = 0

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
        _counted("items", EVERY_CREATOR if creator_profile_id is None else creator_profile_id),
        (f"{_ITEM}{where} ORDER BY created_at DESC, id DESC", params),
    )


def _counted(column: str, creator_profile_id: int) -> tuple[str, list[object]]:
    """The total of a list from `portfolio_counts` (none counted yet: 0)."""
    return (
        f"SELECT COALESCE(SUM({column}), 0) AS n FROM portfolio_counts WHERE creator_profile_id = %s",
        [creator_profile_id],
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
    """In the order the creator gave (`order`, then id), item by item. An item's images are counted
    (a handful); all of them are `portfolio_counts`'."""
    if portfolio_item_id is None:
        return PageQuery(
            page, _counted("images", EVERY_CREATOR), (f"{_IMAGE} ORDER BY portfolio_item_id, sort_order, id", [])
        )
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
