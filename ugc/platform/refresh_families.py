"""Refresh-token families: one row per sign-in, naming the one refresh token of it that still works.

A platform table, like the throttle's: written and read by the token endpoints (`api/sessions.py`),
never by a projection. What it holds is technical and short-lived — which token of a session is
current, and whether the session was ended — so it is kept beside the log, not in it: a refresh
every quarter of an hour per client would otherwise append to the accounts log forever. A row goes
once its last token has expired (`sweep`, the leader's sweep: ugc/platform/sweeping.py); a session
ended earlier stays till then, and a refresh of it is refused as of a family unknown.
"""

from __future__ import annotations

from datetime import datetime

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor

DDL = (
    """CREATE TABLE IF NOT EXISTS refresh_families (
        family TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        current_jti TEXT NOT NULL,
        expires_at {timestamp} NOT NULL,
        revoked_at {timestamp})""",
    "CREATE INDEX IF NOT EXISTS refresh_families_expiry ON refresh_families (expires_at)",
)


def start_family(db: Database, family: str, user_id: int, jti: str, expires_at: datetime) -> None:
    """A new sign-in whose current refresh token is `jti`."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO refresh_families (family, user_id, current_jti, expires_at) VALUES (%s, %s, %s, %s)",
            (family, user_id, jti, expires_at),
        )


def rotate(db: Database, family: str, presented: str, successor: str, expires_at: datetime, now: datetime) -> bool:
    """Make `successor` the family's current token if `presented` is; otherwise end the family.

    A presented token that is not the current one was rotated away already: someone replays it, so
    the whole family ends, the thief's newer tokens and the owner's alike. Of two racing refreshes
    with the same token one wins and the other ends the family, as a replay would.
    """
    with db.transaction(write=True) as cur:
        rotated = cur.execute(
            "UPDATE refresh_families SET current_jti = %s, expires_at = %s "
            "WHERE family = %s AND current_jti = %s AND revoked_at IS NULL RETURNING family",
            (successor, expires_at, family, presented),
        ).fetchone()
        if rotated is None:
            _revoke(cur, family, now)
        return rotated is not None


def revoke(db: Database, family: str, now: datetime) -> None:
    """End the family: none of its refresh tokens works again."""
    with db.transaction(write=True) as cur:
        _revoke(cur, family, now)


def revoke_all_of(db: Database, user_id: int, now: datetime) -> None:
    """End every family of the user's (an erased account signs in nowhere any more)."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "UPDATE refresh_families SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL", (now, user_id)
        )


def _revoke(cur: Cursor, family: str, now: datetime) -> None:
    cur.execute("UPDATE refresh_families SET revoked_at = %s WHERE family = %s AND revoked_at IS NULL", (now, family))


def sweep(cur: Cursor, now: datetime) -> int:
    """Forget the families whose last refresh token has expired: none of them can be presented again.

    Sign-ins used to do it, so the sessions of the last fortnight before sign-ins stopped stayed for good."""
    return cur.execute("DELETE FROM refresh_families WHERE expires_at < %s", (now,)).rowcount
