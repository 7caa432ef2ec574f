"""How many bytes each user keeps in the media store: what the upload quota counts.

A platform table, like the throttle's: the upload path (`api/uploads.py`) takes room before it
keeps a file's bytes and gives it back if the upload then fails; no projection writes it. The
media store never deletes bytes (a removed file stays as an order's evidence, a replaced image
stays under its old key), so nothing else gives room back: the count is what the user costs.
Taking room is one conditional UPDATE, so two uploads racing for the last room cannot both win.
"""

from __future__ import annotations

from ugc.platform.database import Database

DDL = (
    """CREATE TABLE IF NOT EXISTS stored_bytes (
        user_id BIGINT PRIMARY KEY,
        bytes BIGINT NOT NULL)""",
)


def stored(db: Database, user_id: int) -> int:
    with db.read() as cur:
        row = cur.execute("SELECT bytes FROM stored_bytes WHERE user_id = %s", (user_id,)).fetchone()
    return int(row["bytes"]) if row else 0


def take(db: Database, user_id: int, size: int, quota: int) -> bool:
    """Count `size` more bytes for the user if they stay within `quota`; False (nothing counted) if not."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO stored_bytes (user_id, bytes) VALUES (%s, 0) ON CONFLICT (user_id) DO NOTHING", (user_id,)
        )
        taken = cur.execute(
            "UPDATE stored_bytes SET bytes = bytes + %s WHERE user_id = %s AND bytes + %s <= %s",
            (size, user_id, size, quota),
        )
        return taken.rowcount == 1


def give_back(db: Database, user_id: int, size: int) -> None:
    """Uncount bytes that were taken for an upload that was not kept after all."""
    with db.transaction(write=True) as cur:
        cur.execute("UPDATE stored_bytes SET bytes = bytes - %s WHERE user_id = %s", (size, user_id))
