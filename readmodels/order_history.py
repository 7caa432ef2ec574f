"""An order's past, read from the log itself: its events up to a point, and the order as it was then.

Neither is a read table: both replay the order's stored events, which the caller hands over as
the orders log (`EventLog`; the composition root passes the orders application's event store).
The read side therefore never imports the event store, and reads the log without going through
the commands that write it. `order_as_of` folds the events exactly as the library's repository
does (`event.mutate` in turn), from one read of the log for a version or a time alike.

"As of" is one idea for the order (`GET /api/v1/orders/{id}/?as_of=`), its history
(`…/history/?as_of=`) and `ugc history order ID --as-of`: right after the event with that version
(1 is the placing), or after the last event whose domain time is at or before that moment.
`parse_as_of` reads it from text for the HTTP and the CLI edge alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol
from uuid import UUID

from ugc.errors import NotFound
from ugc.orders import Order, order_id
from ugc.platform.dialect import Row
from ugc.platform.recorded_log import Logged, OutOfPlaceEvent

AsOf = int | datetime  # a version, or a moment (time zone aware)
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)

# `?as_of=2026-12-02T13:57:05+00:00` typed unencoded: the query string's `+` arrives as a space.
_UNENCODED_PLUS = re.compile(r"(?<=\d) (\d{2}(?::?\d{2})?)$")
# UTC's letter, which RFC 3339 lets be lower case (as the `T`, which fromisoformat reads either way).
_UTC = re.compile(r"[Zz]$")
# The digits of a fraction past its sixth, which datetime.fromisoformat reads and drops.
_PAST_MICROSECONDS = re.compile(r"[.,]\d{6}(\d+)")
_MAX_VERSION_DIGITS = 18  # more is no version any order reaches (and int() of 5,000 digits raises)


class BadAsOf(ValueError):
    """`as_of` that names no point of this order's past: `reason` says why, `latest` is its last version."""

    def __init__(self, reason: Literal["format", "timezone", "version"], latest: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.latest = latest


class EventLog(Protocol):
    """What reading an order's past needs of the event store: a stream's events, oldest first, each
    decoded and with how it was recorded (ugc/platform/recorded_log.py)."""

    def recorded(self, stream: UUID) -> Sequence[Logged]: ...


def parse_as_of(text: str) -> AsOf:
    """A version (digits) or an ISO 8601 moment with its time zone (`Z` allowed)."""
    raw = text.strip()
    if raw.isascii() and raw.isdigit():
        digits = raw.lstrip("0") or "0"
        return int(digits) if len(digits) <= _MAX_VERSION_DIGITS else 0  # 0: refused as out of range
    return parse_moment(raw)


def parse_moment(text: str, *, ceiling: bool = False) -> datetime:
    """An ISO 8601 time with its time zone (`Z` allowed), in UTC, within the UTC times Python holds.

    Digits past the microsecond are cut: the latest moment at or before the time written (what
    "as of" asks); with `ceiling`, the earliest at or after it (what a bound of stored times needs).
    """
    written = _UTC.sub("+00:00", _UNENCODED_PLUS.sub(r"+\1", text.strip()))
    try:
        moment = datetime.fromisoformat(written)
    except ValueError:
        raise BadAsOf("format") from None
    if moment.tzinfo is None:
        raise BadAsOf("timezone")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 is before any UTC time Python holds, 9999-12-31T23:59-01:00 after:
        # valid times, taken as the first or the last (no event, no order lies beyond either).
        return EARLIEST if moment.year == 1 else LATEST
    beyond = _PAST_MICROSECONDS.search(written)
    if ceiling and beyond is not None and beyond.group(1).strip("0") and moment < LATEST:
        moment += timedelta(microseconds=1)
    return moment


def order_events(log: EventLog, order: int) -> list[Logged]:
    """The order's events, oldest first: the log itself (not a read model)."""
    events = list(log.recorded(order_id(order)))
    if not events:
        raise NotFound("order_not_found")
    return events


def events_as_of(events: Sequence[Logged], as_of: AsOf | None) -> list[Logged]:
    """`events` (oldest first) up to `as_of`: BadAsOf for a version the order does not have,
    NotFound for a moment before it was placed."""
    if as_of is None:
        return list(events)
    if isinstance(as_of, datetime):
        # A prefix of the log, even where the events' times are not in order (each is the clock of
        # the process that decided it): the order after the last event at or before the moment.
        reached = [logged.event.originator_version for logged in events if logged.event.at <= as_of]
        if not reached:
            raise NotFound("order_not_found")
        version: int = reached[-1]
    else:
        version = as_of
    latest = events[-1].event.originator_version
    if not 1 <= version <= latest:
        raise BadAsOf("version", latest=latest)
    return [logged for logged in events if logged.event.originator_version <= version]


def order_as_of(log: EventLog, order: int, as_of: AsOf | None = None) -> Row:
    """The order in the read model's shape as of `as_of` (now, without one)."""
    return folded(events_as_of(order_events(log, order), as_of))


def judged_on(as_of: AsOf, order: Row) -> date:
    """The day (UTC) an order shown as of `as_of` is judged late on (`is_late`): that moment's, or, for a
    version, the day of the event that made it. The order as it was is not late for a delivery date
    that only passed since."""
    moment: datetime = as_of if isinstance(as_of, datetime) else order["updated_at"]
    return moment.astimezone(UTC).date()


def folded(events: Sequence[Logged]) -> Row:
    """The order in the read model's shape after `events` (oldest first, at least one).

    A stream the application wrote holds versions 1, 2, 3...; one that skips a version (an event
    deleted, or moved, outside the application) cannot be folded past the gap: OutOfPlaceEvent names
    the first event that does not follow, where the library would raise a bare version error."""
    state: Order | None = None
    for expected, logged in enumerate(events, start=1):
        if logged.event.originator_version != expected:
            raise OutOfPlaceEvent(
                logged.recorded, f"version {expected} expected: an event before it was removed or moved"
            )
        try:
            state = logged.event.mutate(state)
        except Exception as error:  # an event that decodes but does not apply where it stands
            raise OutOfPlaceEvent(logged.recorded, f"{type(error).__name__}: {error}") from error
    assert state is not None
    return state.as_row()
