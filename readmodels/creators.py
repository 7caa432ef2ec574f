"""Queries on creator profiles (kept by `projections/accounts.py`)."""

from __future__ import annotations

from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS creator_profiles (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        user_id BIGINT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        specialization TEXT NOT NULL,
        experience TEXT NOT NULL,
        portfolio_link TEXT NOT NULL,
        social_links {json} NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL)""",
)


_SELECT = (
    "SELECT p.id, p.version, p.user_id, u.username, p.specialization, p.experience, p.portfolio_link, "
    "p.social_links, p.created_at, p.updated_at, s.rating, s.completed_orders "
    "FROM creator_profiles p JOIN users u ON u.id = p.user_id "
    # creator_stats is kept by the orders' projection; a creator without orders has no row yet.
    "LEFT JOIN creator_stats s ON s.creator_profile_id = p.id"
)


def get_creator_profile(db: Database, profile_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"{_SELECT} WHERE p.id = %s", (profile_id,)).fetchone()


def get_creator_profile_of_user(db: Database, user_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"{_SELECT} WHERE p.user_id = %s", (user_id,)).fetchone()
