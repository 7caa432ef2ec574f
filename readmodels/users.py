"""Queries on the `users` table (kept by `projections/accounts.py`)."""

from __future__ import annotations

from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS users (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        phone TEXT NOT NULL DEFAULT '',
        bio TEXT NOT NULL DEFAULT '',
        avatar TEXT,
        is_verified {bool} NOT NULL,
        roles {json} NOT NULL,
        date_joined {timestamp} NOT NULL,
        creator_profile_id BIGINT,
        version BIGINT NOT NULL DEFAULT 0)""",
)


USER_COLUMNS = (
    "id, username, email, first_name, last_name, phone, bio, avatar, is_verified, roles, "
    "date_joined, creator_profile_id, version"
)


def get_user(db: Database, user_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()


def list_users(db: Database) -> list[Row]:
    """Every user, oldest first, for `ugc users list`."""
    with db.read() as cur:
        return cur.execute(
            "SELECT id, username, email, is_verified, roles, date_joined FROM users ORDER BY id"
        ).fetchall()
