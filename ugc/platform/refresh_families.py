"""Refresh-token families: one row per sign-in, naming the refresh tokens of it that still work.

A refresh answers a new refresh token beside the access token, and the one presented is spent: the
newest alone works, and a spent one presented again (a stolen copy, replayed) ends the family. The
spec's refresh answers `{"access"}` alone, though, so a client written to it keeps the token of its
sign-in and presents it at every refresh: that token stays good until its expiry, as the spec's
client expects, for as long as nobody presents a token the family's refreshes made (`rotating`).
Once one is presented, the family rotates for good: its sign-in token is spent too. A client that
takes the new tokens is then protected as any rotating client is, and a thief who refreshed with a
stolen sign-in token and went on with what that gave him ends the family when the owner comes back.

A refresh whose answer was lost (the connection dropped after the rotation's commit) is sent again
with the token it presented, spent by then: within a short window after the rotation (`reuse_window`,
UGC_REFRESH_REUSE_WINDOW) the token the rotation replaced (`previous_jti`, the immediate predecessor
alone) is taken for that retry, and answered the family's current token again rather than ending the
family. Nothing is written for it, so retries at once, in any process, all get that same token and
the family stays one line. Whoever holds the predecessor then holds the current token too — a thief
replaying a stolen token within the window as well as the owner; past the window, or with any older
token, a replay ends the family as before.

A platform table, like the throttle's: written and read by the token endpoints (`api/sessions.py`),
never by a projection. What it holds is technical and short-lived — which token of a session is
current, and whether the session was ended — so it is kept beside the log, not in it: a refresh
every quarter of an hour per client would otherwise append to the accounts log forever. A row goes
once its last token has expired (`sweep`, the leader's sweep: ugc/platform/sweeping.py); a session
ended earlier stays till then, and a refresh of it is refused as of a family unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, add_column

log = logging.getLogger(__name__)

DDL = (
    """CREATE TABLE IF NOT EXISTS refresh_families (
        family TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        current_jti TEXT NOT NULL,
        expires_at {timestamp} NOT NULL,
        revoked_at {timestamp},
        first_jti TEXT,
        rotating {bool} NOT NULL DEFAULT TRUE,
        previous_jti TEXT,
        current_issued_at {timestamp})""",
    "CREATE INDEX IF NOT EXISTS refresh_families_expiry ON refresh_families (expires_at)",
)


@dataclass(frozen=True)
class FamilyToken:
    """A refresh token as its family records it: enough to sign it again (api/tokens.py, `reissued`)."""

    jti: str
    issued_at: datetime
    expires_at: datetime


def add_later_columns(cur: Cursor) -> None:
    """Give a table of an earlier release the columns added since: a family of it has no sign-in
    token on record (`first_jti`) and rotates already, as every family did then; nor a predecessor
    (`previous_jti`), so its first refresh here has no retry to answer."""
    add_column(cur, "refresh_families", "first_jti TEXT")
    add_column(cur, "refresh_families", "rotating {bool} NOT NULL DEFAULT TRUE")
    add_column(cur, "refresh_families", "previous_jti TEXT")
    add_column(cur, "refresh_families", "current_issued_at {timestamp}")


def start_family(db: Database, family: str, user_id: int, token: FamilyToken) -> None:
    """A new sign-in whose refresh token is `token`: current, and good until a successor is presented."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO refresh_families "
            "(family, user_id, current_jti, current_issued_at, expires_at, first_jti, rotating) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (family, user_id, token.jti, token.issued_at, token.expires_at, token.jti, False),
        )


def rotate(
    db: Database, family: str, presented: str, successor: FamilyToken, now: datetime, reuse_window: timedelta
) -> FamilyToken | None:
    """The family's current token once `presented` is spent, or None when the family ended.

    `successor` becomes current if `presented` is current, or is the sign-in's token of a family that
    does not rotate yet; a presented token other than the sign-in's makes the family rotate. When
    `presented` is the token the family's last rotation replaced, less than `reuse_window` ago, it is
    a retry of that refresh: the current token is answered as it stands, and nothing changes (a
    sign-in's token sent again at once too, which would otherwise rotate again and leave the token
    of the first answer spent). Any other presented token was rotated away already: someone replays
    it, so the whole family ends, the thief's newer tokens and the owner's alike.

    Of two racing refreshes with the current token, one rotates and the other, finding the row
    rotated once the first commits (PostgreSQL's UPDATE waits for the row and looks at it again;
    SQLite's writers take turns), answers as a retry — or, with no window, ends the family.
    """
    cutoff = now - reuse_window if reuse_window > timedelta(0) else None
    with db.transaction(write=True) as cur:
        retried = "COALESCE(previous_jti = %s AND current_issued_at > %s, FALSE)"
        rotated = cur.execute(
            "UPDATE refresh_families SET previous_jti = %s, current_jti = %s, current_issued_at = %s, "
            "expires_at = %s, rotating = rotating OR first_jti IS NULL OR first_jti <> %s "
            "WHERE family = %s AND revoked_at IS NULL "
            f"AND (current_jti = %s OR (first_jti = %s AND NOT rotating)) AND NOT {retried}",
            (presented, successor.jti, successor.issued_at, successor.expires_at, presented)
            + (family, presented, presented, presented, cutoff),
        ).rowcount
        if rotated:
            return successor
        current = None
        if cutoff is not None:
            current = cur.execute(
                "SELECT current_jti, current_issued_at, expires_at FROM refresh_families "
                f"WHERE family = %s AND revoked_at IS NULL AND {retried}",
                (family, presented, cutoff),
            ).fetchone()
        if current is None:
            if _revoke(cur, family, now):
                log.warning(
                    "session %s ended: a refresh token it had rotated away was presented again (a replay)", family
                )
            return None
        return FamilyToken(current["current_jti"], current["current_issued_at"], current["expires_at"])


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


def _revoke(cur: Cursor, family: str, now: datetime) -> bool:
    """End the family; whether it was live until now."""
    ended = cur.execute(
        "UPDATE refresh_families SET revoked_at = %s WHERE family = %s AND revoked_at IS NULL", (now, family)
    )
    return bool(ended.rowcount)


def sweep(cur: Cursor, now: datetime) -> int:
    """Forget the families whose last refresh token has expired: none of them can be presented again.

    Sign-ins used to do it, so the sessions of the last fortnight before sign-ins stopped stayed for good."""
    return cur.execute("DELETE FROM refresh_families WHERE expires_at < %s", (now,)).rowcount
