"""Queries on the `users` table (kept by `projections/accounts.py`)."""

from __future__ import annotations

from ugc.database import Database, Row

USER_COLUMNS = (
    "id, username, email, first_name, last_name, phone, bio, avatar, is_verified, roles, "
    "date_joined, creator_profile_id"
)


def get_user(db: Database, user_id: int) -> Row | None:
    with db.transaction() as cur:
        return cur.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
