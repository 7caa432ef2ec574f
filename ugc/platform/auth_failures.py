"""`auth_failures`: when sign-ins and verifications failed, per subject (a username, an address).

The table the API's throttle counts (`api/throttle.py` decides the limits and the wait). An
attempt is recorded in flight before its outcome is known; it then stays as a failure or is taken
back (`settle`). Rows older than the throttle's window are forgotten as new attempts arrive, and
rows newer than an attempt (from a clock that ran ahead) are taken as made at its time.

An attempt in flight names the process that runs it (`member`: its name among the lease members,
`ugc/platform/leases.py`), and counts only while that process is a live member: one killed before
it answered stops counting once its membership expires (`leases.live_members`), not after a fixed
time that a live attempt could outlast. A row of an earlier release names none; it counts until
`dead_before` instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, add_column
from ugc.platform.leases import live_members

DDL = (
    """CREATE TABLE IF NOT EXISTS auth_failures (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        at {timestamp} NOT NULL,
        attempt TEXT,
        in_flight {bool} NOT NULL DEFAULT FALSE,
        member TEXT)""",
    "CREATE INDEX IF NOT EXISTS auth_failures_key ON auth_failures (scope, key, at)",
)


@dataclass(frozen=True)
class Subject:
    scope: str  # "address", "username_at_address", "username" or "resend" (api/throttle.py)
    key: str


@dataclass(frozen=True)
class Tally:
    """A subject's rows within the window, at most its limit of each kind: its failures' times
    (newest first), and those of its attempts in flight, whose outcome is not known yet (oldest first)."""

    failures: list[datetime]
    in_flight: list[datetime]

    def admits(self, limit: int) -> bool:
        """Whether one more attempt may start: even if every attempt in flight fails, it is within `limit`."""
        return len(self.failures) + len(self.in_flight) < limit


# The window the throttles count failures in; the leader's sweeper forgets older ones (`ugc.platform.sweeping`).
WINDOW = timedelta(minutes=15)
THROTTLE_LOCKS = 0x7468  # the first key of the advisory locks taken here ("th"), beside each subject's hash


def attempt(
    db: Database,
    who: Sequence[tuple[Subject, int]],
    at: datetime,
    forget_until: datetime,
    dead_before: datetime,
    member: str,
) -> tuple[str | None, list[Tally]]:
    """An attempt at `at` by the process `member` against every (subject, limit) of `who`, unless one
    of them does not admit it.

    Checked and recorded in one transaction, with each subject's rows locked meanwhile (on
    PostgreSQL an advisory lock per subject, on SQLite the write lock), so attempts sent at once
    are counted one after another: a burst cannot all pass the check before any is recorded. The
    attempt stands in flight until `settle`. An attempt in flight whose process is no live member is
    counted as nothing: it died before it answered (api/throttle.py); so is one of an earlier
    release in flight since before `dead_before`. Returns its key, or None (nothing recorded); and
    each subject's tally before it. Older rows are forgotten.
    """
    key = secrets.token_hex(8)
    with db.transaction(write=True) as cur:
        if cur.dialect == "postgresql":
            for subject in sorted({subject for subject, _ in who}, key=lambda s: (s.scope, s.key)):
                cur.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (THROTTLE_LOCKS, f"{subject.scope} {subject.key}")
                )
        for subject, _ in who:
            # Rows from a clock that ran ahead (this one before NTP stepped it back, or another server's)
            # count as made now: left in the future, they stayed in the window, and locked their
            # subject, until the window passed *their* time (an hour fast: a 75-minute lock).
            cur.execute(
                "UPDATE auth_failures SET at = %s WHERE scope = %s AND key = %s AND at > %s",
                (at, subject.scope, subject.key, at),
            )
        tallies = [_tally(cur, subject, limit, forget_until, dead_before) for subject, limit in who]
        if not all(tally.admits(limit) for tally, (_, limit) in zip(tallies, who, strict=True)):
            return None, tallies
        for subject, _ in who:
            cur.execute(
                "INSERT INTO auth_failures (scope, key, at, attempt, in_flight, member) "
                "VALUES (%s, %s, %s, %s, TRUE, %s)",
                (subject.scope, subject.key, at, key, member),
            )
            cur.execute(
                "DELETE FROM auth_failures WHERE scope = %s AND key = %s AND at <= %s",
                (subject.scope, subject.key, forget_until),
            )
    return key, tallies


def _tally(cur: Cursor, subject: Subject, limit: int, forget_until: datetime, dead_before: datetime) -> Tally:
    # One statement, so one snapshot: an attempt settling meanwhile (no lock of ours) is seen either in
    # flight or failed, never in neither (two statements let a burst of wrong passwords past the limit).
    rows = cur.execute(
        "SELECT at, in_flight FROM (SELECT at, in_flight FROM auth_failures"
        " WHERE scope = %s AND key = %s AND at > %s AND NOT in_flight ORDER BY at DESC LIMIT %s) AS failed"
        " UNION ALL SELECT at, in_flight FROM (SELECT at, in_flight FROM auth_failures"
        " WHERE scope = %s AND key = %s AND at > %s AND in_flight"
        f" AND (member IN ({live_members(cur.dialect)}) OR (member IS NULL AND at > %s))"
        " ORDER BY at LIMIT %s) AS running",
        (subject.scope, subject.key, forget_until, limit, subject.scope, subject.key, forget_until, dead_before, limit),
    ).fetchall()
    failures = sorted((row["at"] for row in rows if not row["in_flight"]), reverse=True)
    return Tally(failures, sorted(row["at"] for row in rows if row["in_flight"]))


def settle(db: Database, who: Sequence[Subject], key: str, *, failed: bool) -> None:
    """End the attempt `key` against `who`: it stays as a failure if it `failed`, it is taken back otherwise."""
    with db.transaction(write=True) as cur:
        for subject in who:
            cur.execute(
                "UPDATE auth_failures SET in_flight = FALSE WHERE scope = %s AND key = %s AND attempt = %s"
                if failed
                else "DELETE FROM auth_failures WHERE scope = %s AND key = %s AND attempt = %s",
                (subject.scope, subject.key, key),
            )


def add_later_columns(cur: Cursor) -> None:
    """Give a table of an earlier release the columns added since: `attempt` (the attempt's key),
    `in_flight` (whose rows there all stood as failures, and still do) and `member` (none for the
    rows there, which an earlier release's processes go on writing during a rolling deploy)."""
    add_column(cur, "auth_failures", "attempt TEXT")
    add_column(cur, "auth_failures", "in_flight BOOLEAN NOT NULL DEFAULT FALSE")
    add_column(cur, "auth_failures", "member TEXT")
