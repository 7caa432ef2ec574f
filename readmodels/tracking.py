"""Projection positions (`projection_tracking`): stored in the transaction of the rows they describe.

The runners register, lock and advance them (`projections/runner.py`); waiting for them to reach a
command's position, for read-your-writes, is `readmodels/waiting.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ugc.platform.database import Database, reading
from ugc.platform.dialect import Cursor, Row

ADVANCED_CHANNEL = "ugc_read_models_advanced"  # NOTIFYed by every batch that moves read models (PostgreSQL)


def register(cur: Cursor, projection: str, application: str, *, read_model: bool) -> None:
    """A position row at 0 when new. A row already there is locked only if its kind changed: a process
    that starts while others run batches must not take their rows' locks (on PostgreSQL an upsert
    locks the row even when it changes nothing, and a start that locked the rows of one log in
    another order than a batch deadlocked with it)."""
    cur.execute(
        "INSERT INTO projection_tracking (projection, application, position, read_model) "
        "VALUES (%s, %s, 0, %s) ON CONFLICT (projection, application) DO NOTHING",
        (projection, application, read_model),
    )
    cur.execute(
        "UPDATE projection_tracking SET read_model = %s WHERE projection = %s AND application = %s "
        "AND read_model <> %s",
        (read_model, projection, application, read_model),
    )


def position(cur: Cursor, projection: str, application: str, *, lock: bool = False) -> int:
    """The last notification id applied; `lock` holds the row until the transaction ends."""
    return positions(cur, application, [projection], lock=lock)[projection]


def positions(cur: Cursor, application: str, projections: Sequence[str], *, lock: bool = False) -> dict[str, int]:
    """The last notification id each of `projections` applied of `application`; `lock` holds the rows
    until the transaction ends (taken in name order, so two lockers never deadlock)."""
    found = {
        row["projection"]: int(row["position"])
        for row in _select_positions(cur, application, projections, lock=lock).fetchall()
    }
    missing = set(projections) - set(found)
    if missing:
        raise LookupError(f"projections {sorted(missing)} are not registered for {application!r}")
    return found


def lock(cur: Cursor, application: str, projections: Sequence[str]) -> None:
    """Hold the rows of `projections` until the transaction ends, as `positions(lock=True)` does,
    without reading the answer: in a pipelined transaction the lock costs no round trip of its own.
    (SQLite writers take turns anyway.)"""
    if cur.dialect == "postgresql":
        _select_positions(cur, application, projections, lock=True)


def _select_positions(cur: Cursor, application: str, projections: Sequence[str], *, lock: bool) -> Cursor:
    marks = ", ".join(["%s"] * len(projections))
    sql = (
        "SELECT projection, position FROM projection_tracking "
        f"WHERE application = %s AND projection IN ({marks}) ORDER BY projection"
    )
    if lock and cur.dialect == "postgresql":
        sql += " FOR UPDATE"
    return cur.execute(sql, (application, *projections))


class Moved(RuntimeError):
    """A position was not where its mover thought: another process moved it (a rebuild reset it)."""


def advance(cur: Cursor, application: str, projections: Sequence[str], old: int, new: int) -> None:
    """Move the positions of `projections`, all at `old`, to `new` in one statement; a concurrent
    mover makes this fail, not double-apply.

    The rows come back (rather than a row count) because a pipelined cursor knows no count
    until it has read an answer.
    """
    marks = ", ".join(["%s"] * len(projections))
    moved = cur.execute(
        f"UPDATE projection_tracking SET position = %s WHERE application = %s AND projection IN ({marks}) "
        "AND position = %s RETURNING projection",
        (new, application, *projections, old),
    ).fetchall()
    if len(moved) != len(projections):
        stuck = sorted(set(projections) - {row["projection"] for row in moved})
        raise Moved(f"{stuck} on {application} moved from {old} under us")


def announce(cur: Cursor, moved: Advanced | None = None) -> None:
    """Tell every process's watcher, once the transaction commits, that read models moved (PostgreSQL).

    With `moved` (what a batch advanced), the NOTIFY carries the new positions, so a watcher learns
    them without reading `projection_tracking` (`advanced_in`); without, it reads them all again.
    """
    if cur.dialect == "postgresql":
        payload = "" if moved is None else json.dumps([moved.application, list(moved.projections), moved.position])
        cur.execute("SELECT pg_notify(%s, %s)", (ADVANCED_CHANNEL, payload))


@dataclass(frozen=True)
class Advanced:
    """Read-model projections of one application that a committed batch moved to `position`."""

    application: str
    projections: tuple[str, ...]
    position: int


def advanced_in(payload: str) -> Advanced | None:
    """What an `announce` NOTIFY's payload says moved; None when it says only that something did."""
    if not payload:
        return None
    application, projections, position = json.loads(payload)
    return Advanced(application, tuple(projections), int(position))


def reset(cur: Cursor, projection: str) -> None:
    cur.execute("UPDATE projection_tracking SET position = 0 WHERE projection = %s", (projection,))


def read_model_positions(db: Database) -> dict[str, int]:
    """For each application, the position its slowest read-model projection has applied."""
    with db.read() as cur:
        rows = cur.execute(
            "SELECT application, MIN(position) AS position FROM projection_tracking "
            "WHERE read_model GROUP BY application"
        ).fetchall()
    return {row["application"]: int(row["position"]) for row in rows}


def read_model_positions_by_projection(db: Database) -> dict[str, dict[str, int]]:
    """For each application, the position each read-model projection following it has applied."""
    with db.read() as cur:
        rows = cur.execute(
            "SELECT application, projection, position FROM projection_tracking WHERE read_model"
        ).fetchall()
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["application"], {})[row["projection"]] = int(row["position"])
    return found


def lagging(db: Database, required: Mapping[str, int]) -> dict[str, int]:
    """The required positions some read model has not applied yet (for scripts that wait by polling)."""
    positions = read_model_positions(db)
    return {app: pos for app, pos in required.items() if app in positions and positions[app] < pos}


@dataclass(frozen=True)
class ProjectionState:
    """Where one projection stands on one application's log (`ugc projections status`, /readyz, /metrics)."""

    projection: str
    application: str
    read_model: bool
    position: int
    head: int
    lag_events: int  # events stored after `position`
    lag_seconds: float  # age of the oldest event not yet applied (0 when none)
    parked: int  # events of the projection waiting parked (all applications)
    postponed: int  # side effects of the projection set aside to be tried again by themselves
    holder: str | None  # the process holding its lease now (None: nobody's lease is live)
    token: int  # the lease's fencing token: how many times it was acquired
    unheld_for: float | None  # seconds since its lease lapsed (None while held; inf if never held)


def all_positions(source: Database | Cursor) -> list[Row]:
    """Every registered projection's position on each log it follows (read on `source`: `reading`)."""
    with reading(source) as cur:
        return cur.execute(
            "SELECT projection, application, position, read_model FROM projection_tracking "
            "ORDER BY projection, application"
        ).fetchall()
