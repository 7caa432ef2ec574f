"""Parked events (`parked_events`): events a projection could not apply after a few tries.

The runner parks an event after `max_attempts` failures in a row and goes on past it, so one
poison event never stalls a context; an operator sees it (`ugc projections status`), fixes the
cause and re-applies it (`ugc projections retry NAME`), or gives up on it (`ugc projections skip`).
A row's `status` is `parked` (waiting for a retry) or `skipped` (given up: never applied).

A side effect that failed for a reason of its own, for a while (a mail whose recipient is
greylisted: `SideEffectPostponed`), is `postponed`: the runner passes over it as over a parked
event, and tries it again by itself at `retry_at`, backing off, until it goes or has waited too long
(then it is parked, for an operator).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ugc.platform.database import Database, reading
from ugc.platform.dialect import Cursor, Row, add_column

DDL = (
    """CREATE TABLE IF NOT EXISTS parked_events (
        projection TEXT NOT NULL,
        application TEXT NOT NULL,
        position BIGINT NOT NULL,
        topic TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        status TEXT NOT NULL,
        parked_at {timestamp} NOT NULL,
        retry_at {timestamp},
        PRIMARY KEY (projection, application, position))""",
)

PARKED = "parked"
SKIPPED = "skipped"
POSTPONED = "postponed"


def add_later_columns(cur: Cursor) -> None:
    """Give a `parked_events` made before side effects could be postponed its `retry_at`."""
    add_column(cur, "parked_events", "retry_at {timestamp}")


def park(
    cur: Cursor, projection: str, application: str, position: int, topic: str, error: str, attempts: int, at: datetime
) -> None:
    cur.execute(
        "INSERT INTO parked_events (projection, application, position, topic, error, attempts, status, parked_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (projection, application, position) "
        "DO UPDATE SET error = %s, attempts = %s, status = %s",
        (projection, application, position, topic, error[:4000], attempts, PARKED, at, error[:4000], attempts, PARKED),
    )


def postpone(
    cur: Cursor,
    projection: str,
    application: str,
    position: int,
    topic: str,
    error: str,
    attempts: int,
    first_at: datetime,
    retry_at: datetime,
) -> None:
    """Set the event at `position` aside until `retry_at`, after `attempts`, the first at `first_at`
    (unless an operator gave up on it meanwhile)."""
    cur.execute(
        "INSERT INTO parked_events (projection, application, position, topic, error, attempts, status, parked_at, "
        "retry_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (projection, application, position) "
        "DO UPDATE SET error = %s, attempts = %s, status = %s, retry_at = %s WHERE parked_events.status <> %s",
        (projection, application, position, topic, error[:4000], attempts, POSTPONED, first_at, retry_at)
        + (error[:4000], attempts, POSTPONED, retry_at, SKIPPED),
    )


def postponed_due(cur: Cursor, projection: str, now: datetime) -> list[Row]:
    """The events of `projection` postponed until `now` or before, oldest first."""
    return cur.execute(
        "SELECT application, position, topic, attempts, parked_at FROM parked_events "
        "WHERE projection = %s AND status = %s AND retry_at <= %s ORDER BY application, position",
        (projection, POSTPONED, now),
    ).fetchall()


def skip(cur: Cursor, projection: str, application: str, position: int, at: datetime) -> None:
    """Give up on the event at `position`: parked or not reached yet, the projection never applies it."""
    cur.execute(
        "INSERT INTO parked_events (projection, application, position, topic, error, attempts, status, parked_at) "
        "VALUES (%s, %s, %s, '', 'skipped by an operator', 0, %s, %s) "
        "ON CONFLICT (projection, application, position) DO UPDATE SET status = %s",
        (projection, application, position, SKIPPED, at, SKIPPED),
    )


def passed_over(cur: Cursor, application: str, projections: Sequence[str], after: int) -> dict[str, set[int]]:
    """The positions after `after` that each of `projections` must not apply (parked or skipped)."""
    marks = ", ".join(["%s"] * len(projections))
    rows = cur.execute(
        f"SELECT projection, position FROM parked_events WHERE application = %s AND projection IN ({marks}) "
        "AND position > %s",
        (application, *projections, after),
    ).fetchall()
    found: dict[str, set[int]] = {name: set() for name in projections}
    for row in rows:
        found[row["projection"]].add(int(row["position"]))
    return found


def waiting(cur: Cursor, projection: str) -> list[Row]:
    """The events of `projection` parked for a retry, oldest first."""
    return cur.execute(
        "SELECT application, position, topic, error, attempts FROM parked_events "
        "WHERE projection = %s AND status = %s ORDER BY application, position",
        (projection, PARKED),
    ).fetchall()


def failed_again(cur: Cursor, projection: str, application: str, position: int, error: str) -> None:
    cur.execute(
        "UPDATE parked_events SET error = %s, attempts = attempts + 1 "
        "WHERE projection = %s AND application = %s AND position = %s",
        (error[:4000], projection, application, position),
    )


def applied(cur: Cursor, projection: str, application: str, position: int) -> None:
    cur.execute(
        "DELETE FROM parked_events WHERE projection = %s AND application = %s AND position = %s",
        (projection, application, position),
    )


def counts(source: Database | Cursor, status: str = PARKED) -> dict[str, int]:
    """Projection -> how many of its events wait with `status` (parked, by default), read on `source`
    (`reading`)."""
    with reading(source) as cur:
        rows = cur.execute(
            "SELECT projection, COUNT(*) AS n FROM parked_events WHERE status = %s GROUP BY projection", (status,)
        ).fetchall()
    return {row["projection"]: int(row["n"]) for row in rows}
