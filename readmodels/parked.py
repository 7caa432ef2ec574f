"""Parked events (`parked_events`): events a projection could not apply after a few tries.

The runner parks an event after `max_attempts` failures in a row and goes on past it, so one
poison event never stalls a context; an operator sees it (`ugc projections status`), fixes the
cause and re-applies it (`ugc projections retry NAME`), or gives up on it (`ugc projections skip`).
A row's `status` is `parked` (waiting for a retry) or `skipped` (given up: never applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, Row

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
        PRIMARY KEY (projection, application, position))""",
)

PARKED = "parked"
SKIPPED = "skipped"


def park(
    cur: Cursor, projection: str, application: str, position: int, topic: str, error: str, attempts: int, at: datetime
) -> None:
    cur.execute(
        "INSERT INTO parked_events (projection, application, position, topic, error, attempts, status, parked_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (projection, application, position) "
        "DO UPDATE SET error = %s, attempts = %s, status = %s",
        (projection, application, position, topic, error[:4000], attempts, PARKED, at, error[:4000], attempts, PARKED),
    )


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


def counts(db: Database) -> dict[str, int]:
    """Projection -> how many of its events wait parked (skipped ones not counted)."""
    with db.read() as cur:
        rows = cur.execute(
            "SELECT projection, COUNT(*) AS n FROM parked_events WHERE status = %s GROUP BY projection", (PARKED,)
        ).fetchall()
    return {row["projection"]: int(row["n"]) for row in rows}
