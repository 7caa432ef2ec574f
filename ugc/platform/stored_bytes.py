"""How many bytes each user keeps in the media store: what the upload quota counts, and the room
taken for uploads not finished yet.

Platform tables, like the throttle's: the upload path (`api/uploads.py`) takes room before it keeps
a file's bytes, and either gives it back (the upload failed) or settles it (its event is stored); no
projection writes them. The media store never deletes bytes (a removed file stays as an order's
evidence, a replaced image stays under its old key), so nothing else gives room back: the count is
what the user costs. Taking room is one conditional UPDATE, so two uploads racing for the last room
cannot both win.

Each taking is a row of `upload_reservations` (the media key, the bytes, when) until it is given back
or settled. A process that dies in between (SIGKILL, a forced stop) leaves its row: the bytes stay
counted although maybe no event stores them. Before its save the upload's command records in the row
what the save is about to append (`intent`, commands/intents.py), so that the sweep of abandoned
uploads (`ugc/platform/abandoned_uploads.py`) can ask the event store, once the row is old enough
that no live upload holds it, whether the upload was stored (settle) or not (give the room back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ugc.platform.database import Database

DDL = (
    """CREATE TABLE IF NOT EXISTS stored_bytes (
        user_id BIGINT PRIMARY KEY,
        bytes BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS upload_reservations (
        media_key TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        taken_at {timestamp} NOT NULL,
        intent TEXT)""",
    "CREATE INDEX IF NOT EXISTS upload_reservations_taken ON upload_reservations (taken_at)",
)


@dataclass(frozen=True)
class Reservation:
    media_key: str
    intent: str  # what its command's save announced (commands/intents.py); "" before any


def stored(db: Database, user_id: int) -> int:
    with db.read() as cur:
        row = cur.execute("SELECT bytes FROM stored_bytes WHERE user_id = %s", (user_id,)).fetchone()
    return int(row["bytes"]) if row else 0


def stored_by_all(db: Database) -> int:
    """The bytes every user keeps in the media store."""
    with db.read() as cur:
        row = cur.execute("SELECT COALESCE(SUM(bytes), 0) AS bytes FROM stored_bytes").fetchone()
    return int(row["bytes"]) if row else 0


def take(db: Database, user_id: int, size: int, quota: int, media_key: str, at: datetime) -> bool:
    """Count `size` more bytes for the user, reserved for the upload of `media_key`, if they stay within
    `quota`; False (nothing counted) if not."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO stored_bytes (user_id, bytes) VALUES (%s, 0) ON CONFLICT (user_id) DO NOTHING", (user_id,)
        )
        taken = cur.execute(
            "UPDATE stored_bytes SET bytes = bytes + %s WHERE user_id = %s AND bytes + %s <= %s",
            (size, user_id, size, quota),
        )
        if taken.rowcount != 1:
            return False
        cur.execute(
            "INSERT INTO upload_reservations (media_key, user_id, bytes, taken_at) VALUES (%s, %s, %s, %s)",
            (media_key, user_id, size, at),
        )
        return True


def intend(db: Database, media_key: str, intent: str) -> None:
    """Record what a save of the upload's command is about to append (before it does)."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE upload_reservations SET intent = COALESCE(intent, '') || %s WHERE media_key = %s",
            (intent, media_key),
        )


def settle(db: Database, media_key: str) -> None:
    """The upload's bytes are kept (an event names them): they stay counted, the reservation goes."""
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM upload_reservations WHERE media_key = %s", (media_key,))


def give_back(db: Database, media_key: str) -> None:
    """Uncount the bytes reserved for an upload that was not kept after all; once, however often called."""
    with db.transaction(write=True) as cur:
        row = cur.execute(
            "SELECT user_id, bytes FROM upload_reservations WHERE media_key = %s", (media_key,)
        ).fetchone()
        if row is None:
            return
        # Two giving back at once both read the row; only the one whose DELETE takes it uncounts.
        if cur.execute("DELETE FROM upload_reservations WHERE media_key = %s", (media_key,)).rowcount != 1:
            return
        cur.execute("UPDATE stored_bytes SET bytes = bytes - %s WHERE user_id = %s", (row["bytes"], row["user_id"]))


def taken_before(db: Database, before: datetime) -> list[Reservation]:
    """The reservations taken before `before`: uploads whose process died, once `before` is far enough back."""
    with db.read() as cur:
        rows = cur.execute(
            "SELECT media_key, intent FROM upload_reservations WHERE taken_at < %s ORDER BY taken_at", (before,)
        ).fetchall()
    return [Reservation(str(row["media_key"]), str(row["intent"] or "")) for row in rows]
