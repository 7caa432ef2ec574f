"""What an operator does to projections: see where they stand, re-apply or give up parked events.

`ugc projections status|retry|skip` (ugc/cli/read_models.py), and the figures /readyz and /metrics report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from projections.base import Projection, end_batch
from readmodels import parked, tracking
from readmodels.tracking import ProjectionState
from ugc.platform import leases
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores


def status(
    db: Database, stores: EventStores, *, now: datetime | None = None, on: Cursor | None = None
) -> list[ProjectionState]:
    """Every registered projection on every log it follows: position, head, lag, parked, postponed, lease.

    Read on `db`'s pool and the stores' own, or on `on`, a cursor on `db` (`Database.probing`'s, for
    /readyz and /metrics): on PostgreSQL every statement then runs on it, the logs' too, as they
    are tables of the one database; SQLite's logs are files of their own, read through their stores.
    """
    now = now or datetime.now(UTC)
    source: Database | Cursor = db if on is None else on
    heads = stores.heads(on=on)
    counts = parked.counts(source)
    postponed = parked.counts(source, parked.POSTPONED)
    held = leases.states(source)
    oldest: dict[tuple[str, int], tuple[int, float]] = {}  # (application, position) -> lag figures
    states = []
    for row in tracking.all_positions(source):
        application, position = row["application"], int(row["position"])
        if application not in heads:
            continue
        key = (application, position)
        if key not in oldest:
            oldest[key] = _lag(stores, application, position, heads[application], now, on)
        lag_events, lag_seconds = oldest[key]
        lease = held.get(row["projection"])
        states.append(
            ProjectionState(
                projection=row["projection"],
                application=application,
                read_model=bool(row["read_model"]),
                position=position,
                head=heads[application],
                lag_events=lag_events,
                lag_seconds=lag_seconds,
                parked=counts.get(row["projection"], 0),
                postponed=postponed.get(row["projection"], 0),
                holder=lease.holder if lease else None,
                token=lease.token if lease else 0,
                unheld_for=lease.expired_for if lease else float("inf"),
            )
        )
    return states


def _lag(
    stores: EventStores, application: str, position: int, head: int, now: datetime, on: Cursor | None
) -> tuple[int, float]:
    if position >= head:
        return 0, 0.0
    count = events_after(stores, application, position, on)
    # The first unapplied event's age on one clock: its chain row's recording time is PostgreSQL's
    # clock_timestamp(), read against that clock's now (on SQLite this host's, every process's). The
    # event's own timestamp is its appender's clock, and this process's is another: a replica 45 s
    # fast found a fresh event 47 s old (503), one slow hid real lag.
    age = stores.chained(application).recorded_age(position, on)
    if age is None:  # stored before the chain existed: only the event's own time tells
        age = _event_age(stores, application, position, now)
    return count, max(0.0, age)


def _event_age(stores: EventStores, application: str, position: int, now: datetime) -> float:
    first = stores[application].recorder.select_notifications(start=position, limit=1, inclusive_of_start=False)
    if not first:
        return 0.0
    try:
        event: Any = stores[application].mapper.to_domain_event(first[0])
        stamp: datetime = event.timestamp
    except Exception:  # an event that does not decode is as old as we cannot tell: count it as lagging
        return float("inf")
    return (now - stamp).total_seconds()


def events_after(stores: EventStores, application: str, position: int, on: Cursor | None = None) -> int:
    """How many events `application`'s log holds after `position` (on PostgreSQL read on `on` when
    given, a cursor on the log's database)."""
    recorder: Any = stores[application].recorder
    if hasattr(recorder, "events_table_name") and hasattr(recorder.datastore, "schema"):  # PostgreSQL
        table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE notification_id > %s"
        if on is not None:
            row = on.execute(sql, (position,)).fetchone()
        else:
            with recorder.datastore.get_connection() as conn, conn.cursor() as cur:
                row = cur.execute(sql, (position,)).fetchone()
        assert row is not None
        count = int(row["n"] if isinstance(row, dict) else row[0])  # the library's rows are dicts
    else:
        with recorder.datastore.transaction(commit=False) as cur:
            cur.execute(f"SELECT COUNT(*) FROM {recorder.events_table_name} WHERE rowid > ?", (position,))
            count = int(cur.fetchone()[0])
    return count


@dataclass(frozen=True)
class Retried:
    applied: list[tuple[str, int]]  # (application, position)
    failed: list[tuple[str, int, str]]  # (application, position, error)


def retry(db: Database, stores: EventStores, projection: Projection, *, clock: Any = None) -> Retried:
    """Re-apply each parked event of `projection` (oldest first), each in its own transaction with
    the projection's position row locked, so it never interleaves with a runner's batch. An event
    that fails again stays parked with its new error.

    Two retries of one projection take turns, the second reading what is still parked once the
    first is done: run side by side, both sent each parked mail.
    """
    with db.exclusive_lock(f"projections-retry-{projection.name}"):
        return _retry(db, stores, projection)


def _retry(db: Database, stores: EventStores, projection: Projection) -> Retried:
    applied: list[tuple[str, int]] = []
    failed: list[tuple[str, int, str]] = []
    with db.read() as cur:
        waiting = parked.waiting(cur, projection.name)
    handlers = projection.topics()
    for row in waiting:
        application, position = row["application"], int(row["position"])
        app = stores[application]
        found = app.recorder.select_notifications(start=position, limit=1)
        try:
            if not found or found[0].id != position:
                raise LookupError(f"no event at {position} in {application}")
            notification = found[0]
            handler = handlers.get(notification.topic)
            event = app.mapper.to_domain_event(notification)
            if projection.read_model:
                with db.transaction(write=True) as cur:
                    tracking.lock(cur, application, [projection.name])
                    if handler is not None:
                        projection.position = position
                        handler(cur, event)
                    end_batch(cur, [projection])
                    parked.applied(cur, projection.name, application, position)
                    tracking.announce(cur)
                projection.committed()
            else:
                if handler is not None:
                    handler(event)
                with db.transaction(write=True) as cur:
                    parked.applied(cur, projection.name, application, position)
            applied.append((application, position))
        except Exception as error:
            projection.aborted()
            message = f"{type(error).__name__}: {error}"
            with db.transaction(write=True) as cur:
                parked.failed_again(cur, projection.name, application, position, message)
            failed.append((application, position, message))
    return Retried(applied, failed)


class NotSkippable(ValueError):
    """The position names no event the projection could still give up on (the message says why)."""


def skip(db: Database, stores: EventStores, projection: Projection, application: str, position: int) -> None:
    """Give up on one event: parked or not reached yet, `projection` never applies it.

    An event it applied already is refused (NotSkippable): recorded as skipped, it would be left out
    of the next rebuild, whose tables would then differ from the live ones (`ugc verify`), and so
    is a position the log has not reached, which names no event.
    """
    head = stores[application].recorder.max_notification_id() or 0
    if not 1 <= position <= head:
        raise NotSkippable(f"{application} has no event {position} (its events are 1 to {head})")
    with db.transaction(write=True) as cur:
        applied_up_to = tracking.position(cur, projection.name, application, lock=True)
        stuck = any(
            int(row["position"]) == position and row["application"] == application
            for row in parked.waiting(cur, projection.name)
        )
        if position <= applied_up_to and not stuck:
            raise NotSkippable(
                f"{projection.name} applied event {position} of {application} already (it stands at {applied_up_to})"
            )
        parked.skip(cur, projection.name, application, position, datetime.now(UTC))


def render(states: Sequence[ProjectionState]) -> str:
    """The status as a table for a terminal."""
    header = ("projection", "log", "position", "head", "lag", "lag s", "parked", "postponed", "holder", "token")
    rows = [
        (
            s.projection,
            s.application,
            str(s.position),
            str(s.head),
            str(s.lag_events),
            "?" if s.lag_seconds == float("inf") else f"{s.lag_seconds:.1f}",
            str(s.parked),
            str(s.postponed),
            s.holder or _unheld(s.unheld_for),
            str(s.token),
        )
        for s in states
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def parked_errors(db: Database, states: Sequence[ProjectionState]) -> list[str]:
    """One line per parked event of the projections `states` shows parked ones for, with its error
    (a mail's: `MailRefused: mail verify-<id> to *@example.com: 550 ...`), for the operator to act on."""
    with db.read() as cur:
        return [
            f"parked {name} {row['application']} {row['position']} ({row['attempts']} attempts): {row['error']}"
            for name in sorted({s.projection for s in states if s.parked})
            for row in parked.waiting(cur, name)
        ]


def _unheld(expired_for: float | None) -> str:
    if expired_for is None or expired_for == float("inf"):
        return "- (never held)"
    return f"- (none for {expired_for:.0f}s)"
