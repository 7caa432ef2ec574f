"""Projection positions: stored with the rows they describe, waited on for read-your-writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from ugc.database import Cursor, Database
from ugc.errors import Unavailable


class Progress:
    """In-process signals between commands, runners and waiters.

    Commands `nudge` the local runner after an append so it pulls at once; the runner
    `advanced()` after each commit so local waiters re-check at once. Waiters also poll the
    table, so a runner in another process is seen too.
    """

    def __init__(self) -> None:
        self._nudged = threading.Event()
        self._advanced = threading.Condition()

    def nudge(self) -> None:
        self._nudged.set()

    def wait_for_nudge(self, timeout: float) -> None:
        self._nudged.wait(timeout)
        self._nudged.clear()

    def advanced(self) -> None:
        with self._advanced:
            self._advanced.notify_all()

    def wait_for_advance(self, timeout: float) -> None:
        with self._advanced:
            self._advanced.wait(timeout)


def register(cur: Cursor, projection: str, application: str, *, read_model: bool) -> None:
    cur.execute(
        "INSERT INTO projection_tracking (projection, application, position, read_model) "
        "VALUES (%s, %s, 0, %s) ON CONFLICT (projection, application) DO UPDATE SET read_model = %s",
        (projection, application, read_model, read_model),
    )


def position(cur: Cursor, projection: str, application: str, *, lock: bool = False) -> int:
    """The last notification id applied; `lock` holds the row until the transaction ends."""
    sql = "SELECT position FROM projection_tracking WHERE projection = %s AND application = %s"
    if lock and cur.dialect == "postgresql":
        sql += " FOR UPDATE"
    row = cur.execute(sql, (projection, application)).fetchone()
    if row is None:
        raise LookupError(f"projection {projection!r} is not registered for {application!r}")
    return int(row["position"])


def advance(cur: Cursor, projection: str, application: str, old: int, new: int) -> None:
    """Move the position from `old` to `new`; a concurrent mover makes this fail, not double-apply."""
    cur.execute(
        "UPDATE projection_tracking SET position = %s WHERE projection = %s AND application = %s AND position = %s",
        (new, projection, application, old),
    )
    if cur.rowcount != 1:
        raise RuntimeError(f"{projection} on {application} moved past {old} under us")


def reset(cur: Cursor, projection: str) -> None:
    cur.execute("UPDATE projection_tracking SET position = 0 WHERE projection = %s", (projection,))


def lagging(db: Database, required: Mapping[str, int]) -> dict[str, int]:
    """Applications whose slowest read-model projection is still behind the required position."""
    with db.transaction() as cur:
        rows = cur.execute(
            "SELECT application, MIN(position) AS position FROM projection_tracking "
            "WHERE read_model GROUP BY application"
        ).fetchall()
    reached = {row["application"]: int(row["position"]) for row in rows}
    return {app: pos for app, pos in required.items() if app in reached and reached[app] < pos}


def wait_for(db: Database, progress: Progress, required: Mapping[str, int], timeout: float) -> None:
    """Block until every read model has applied `required` (application -> position).

    Raises `Unavailable` after `timeout` seconds rather than let a stale answer out.
    """
    if not required:
        return
    deadline = time.monotonic() + timeout
    while lagging(db, required):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Unavailable("read_model_lagging")
        progress.wait_for_advance(min(0.005, remaining))
