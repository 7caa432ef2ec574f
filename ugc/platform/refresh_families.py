"""Refresh-token families: one row per sign-in, naming the refresh tokens of it that still work.

A refresh answers a new refresh token beside the access token, and the one presented is spent: the
newest alone works, and a spent one presented again (a stolen copy, replayed) ends the family. The
spec's refresh answers `{"access"}` alone, though, so a client written to it keeps the token of its
sign-in and presents it at every refresh: that token stays good until its expiry, as the spec's
client expects, for as long as nobody presents a token the family's refreshes made (`rotating`).
Once one is presented, the family rotates for good: its sign-in token is spent too. A client that
takes the new tokens is then protected as any rotating client is, and a thief who refreshed with a
stolen sign-in token and went on with what that gave him ends the family when the owner comes back.

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
from ugc.platform.dialect import Cursor, add_column

DDL = (
    """CREATE TABLE IF NOT EXISTS refresh_families (
        family TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        current_jti TEXT NOT NULL,
        expires_at {timestamp} NOT NULL,
        revoked_at {timestamp},
        first_jti TEXT,
        rotating {bool} NOT NULL DEFAULT TRUE)""",
    "CREATE INDEX IF NOT EXISTS refresh_families_expiry ON refresh_families (expires_at)",
)


def add_later_columns(cur: Cursor) -> None:
    """Give a table of an earlier release the columns added since: a family of it has no sign-in
    token on record (`first_jti`) and rotates already, as every family did then."""
    add_column(cur, "refresh_families", "first_jti TEXT")
    add_column(cur, "refresh_families", "rotating {bool} NOT NULL DEFAULT TRUE")


def start_family(db: Database, family: str, user_id: int, jti: str, expires_at: datetime) -> None:
    """A new sign-in whose refresh token is `jti`: current, and good until a successor is presented."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO refresh_families (family, user_id, current_jti, expires_at, first_jti, rotating) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (family, user_id, jti, expires_at, jti, False),
        )


def rotate(db: Database, family: str, presented: str, successor: str, expires_at: datetime, now: datetime) -> bool:
    """Make `successor` the family's current token if `presented` is current, or is the sign-in's
    token of a family that does not rotate yet; otherwise end the family. A presented token other
    than the sign-in's makes the family rotate.

    A presented token that no longer works was rotated away already: someone replays it, so the
    whole family ends, the thief's newer tokens and the owner's alike. Of two racing refreshes with
    one token that no longer works once the other won, one wins and the other ends the family, as a
    replay would.
    """
    with db.transaction(write=True) as cur:
        rotated = cur.execute(
            "UPDATE refresh_families SET current_jti = %s, expires_at = %s, "
            "rotating = rotating OR first_jti IS NULL OR first_jti <> %s "
            "WHERE family = %s AND revoked_at IS NULL "
            "AND (current_jti = %s OR (first_jti = %s AND NOT rotating)) RETURNING family",
            (successor, expires_at, presented, family, presented, presented),
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
