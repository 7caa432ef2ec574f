"""`ugc verify`'s check of the log: every chain recomputed, every stream's versions.

The signed checkpoints are checked against the chains in ugc/platform/checkpoints_verify.py.

Reads in batches by position and locks nothing, so it runs beside a live system: it reads up to the
heads it found when it began (appends commit their events and chain rows together, in position
order, so everything up to those heads is there to read). Each check compares one event with what
is stored right before it (the stream's previous chain row, the log's previous link), so one
tampered event is named once rather than every event after it; a chain rewritten consistently
from some point on is what the signed checkpoints catch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification

from ugc.platform.chain import GENESIS, ChainedLog, ChainRow, canonical_bytes, next_link, stream_hash
from ugc.platform.dialect import no_such_table

BATCH = 2_000  # events read per query
# What reading a value of another type than the store writes raises (a UUID column holding other text,
# a time that does not parse, text where bytes belong): SQLite keeps any value in any column, so
# whoever writes its file can put one there; it is a finding where it is, not the end of `ugc verify`.
UNREADABLE = (ValueError, TypeError)
# `ugc migrate` (and every process's start) makes a missing table anew, and a missing chain table's
# rows from the log as it stands then: whatever was changed in it would be vouched for by a fresh chain.
NOT_MIGRATE = (
    "do not run ugc migrate (nor start a server) before investigating: it would make what is missing anew "
    "and chain the log as it stands now, changes and all"
)


@dataclass(frozen=True)
class Finding:
    """One thing `ugc verify` found wrong. `kind` says which check: "chain", "checkpoint" (and
    others' checks, e.g. read models, add their own kinds)."""

    kind: str
    context: str | None
    position: int | None
    stream: str | None
    version: int | None
    what: str
    detail: Mapping[str, Any] | None = None  # what a check knows beyond `what`, for --json (a read model's row)

    def as_dict(self) -> dict[str, Any]:
        found = {
            "kind": self.kind,
            "context": self.context,
            "position": self.position,
            "stream": self.stream,
            "version": self.version,
            "what": self.what,
        }
        return found if self.detail is None else found | {"detail": self.detail}

    def __str__(self) -> str:
        where = [self.kind]
        if self.context is not None:
            where.append(self.context)
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.stream is not None:
            where.append(f"stream {self.stream}")
        if self.version is not None:
            where.append(f"version {self.version}")
        return f"{' '.join(where)}: {self.what}"


@dataclass
class _Stream:
    version: int
    hash: bytes | None  # None when the event at `version` has no chain row to extend
    position: int  # where the event at `version` is


class ChainCheck:
    """One context's log against its chain, position by position."""

    def __init__(self, context: str, events: ApplicationRecorder, chain: ChainedLog) -> None:
        self.context = context
        self.events = events
        self.chain = chain
        self.link = GENESIS
        self.streams: dict[UUID, _Stream] = {}
        self.checked = 0
        self.missing: list[str] = []  # the log's tables that are gone ("events", "chain"): nothing to check

    def head(self) -> int:
        """The position to read up to: the chain's head, or the log's when it is further on."""
        chain, events = None, 0
        try:
            chain = self.chain.chain_head()
        except UNREADABLE:  # its last row holds a value of another type: named when the run reads it
            pass
        except Exception as error:
            if not no_such_table(error):
                raise
            self.missing.append("chain")
        try:
            events = self.events.max_notification_id() or 0
        except Exception as error:
            if not no_such_table(error):
                raise
            self.missing.append("events")
        return max(chain.position if chain else 0, events)

    def events_up_to(self, stop: int) -> int:
        """How many events a run up to `stop` reads, for its progress (none when a table is missing).
        Not `stop`: a restore moves a log's positions far on, past a gap that holds no events."""
        if self.missing:
            return 0
        return _events_in(self.chain.runs(), 0, stop)

    def events_past(self, after: int, stop: int) -> int | None:
        """How many events the log holds past position `after` up to `stop`; None without its events table."""
        if "events" in self.missing:
            return None
        return _events_in(self.chain.runs(), after, stop)

    def run(self, stop: int, advance: Callable[[int], None]) -> Iterator[Finding]:
        if self.missing:
            tables = " and ".join(f"{table} table" for table in self.missing)
            what = f"the log's {tables} {'is' if len(self.missing) == 1 else 'are'} missing: dropped; {NOT_MIGRATE}"
            yield Finding("chain", self.context, None, None, None, what)
            return
        start = 1
        while start <= stop:
            try:
                events = self.events.select_notifications(start=start, limit=BATCH, stop=stop)
                until = events[-1].id if len(events) == BATCH else stop
                rows = self.chain.chain_rows(start, until, until - start + 1)
            except UNREADABLE:
                # A row of this batch does not read: read it position by position, to name each one,
                # from the first position that holds anything (positions skip far after a restore).
                start = self._first_stored(start, stop)
                until = min(start + BATCH - 1, stop)
                read = [self._read(position) for position in range(start, until + 1)]
                found = [each for each in read if each[1:] != (None, None, None)]  # not the gaps between positions
            else:
                by_position, by_row = {event.id: event for event in events}, {row.position: row for row in rows}
                found = [
                    (position, by_position.get(position), by_row.get(position), None)
                    for position in sorted(by_position.keys() | by_row.keys())
                ]
            count = 0
            for position, event, row, unreadable in found:
                count += event is not None or unreadable is not None
                yield from self._check(position, event, row, unreadable or _mistyped(event, row))
            self.checked += count
            advance(count)
            start = until + 1

    def _first_stored(self, start: int, stop: int) -> int:
        """The first position from `start` to `stop` with an event or a chain row, readable or not
        (`start` itself if it has one, `stop` if none does): found by halving, in a few dozen reads
        however far positions skip."""
        low, high = start, stop
        while low < high:
            middle = (low + high) // 2
            if self._holds(start, middle):
                high = middle
            else:
                low = middle + 1
        return low

    def _holds(self, start: int, stop: int) -> bool:
        """Whether any position from `start` to `stop` has an event or a chain row (one that does not
        read counts: reading the first raised)."""
        try:
            events = self.events.select_notifications(start=start, limit=1, stop=stop)
            return bool(events) or bool(self.chain.chain_rows(start, stop, 1))
        except UNREADABLE:
            return True

    def _read(self, position: int) -> tuple[int, Notification | None, ChainRow | None, str | None]:
        """The event and the chain row at `position`, each None when missing or unreadable, and what did not read."""
        problems, event, row = [], None, None
        try:
            event = next(iter(self.events.select_notifications(start=position, limit=1, stop=position)), None)
        except UNREADABLE as error:
            problems.append(f"the event does not read ({error})")
        try:
            row = next(iter(self.chain.chain_rows(position, position, 1)), None)
        except UNREADABLE as error:
            problems.append(f"the chain row does not read ({error})")
        return position, event, row, "; ".join(problems) or None

    def _finding(self, position: int, stream: UUID | None, version: int | None, what: str) -> Finding:
        return Finding("chain", self.context, position, str(stream) if stream else None, version, what)

    def _check(
        self, position: int, event: Notification | None, row: ChainRow | None, unreadable: str | None
    ) -> Iterator[Finding]:
        if unreadable is not None:
            what = f"{unreadable}: a value of another type than the store writes was put there"
            yield self._finding(position, row.stream if row else None, row.version if row else None, what)
            # What still reads carries the checks on: the link and the stream's version go on from here.
            if row is not None and isinstance(row.version, int):
                self.link = row.link
                self._advance(row.stream, row.version, row.hash, position)
            elif event is not None and isinstance(event.originator_version, int):
                self._advance(UUID(str(event.originator_id)), event.originator_version, None, position)
            return
        if row is not None:
            expected_link = next_link(self.link, row.hash)
            if row.link != expected_link:
                yield self._finding(
                    position,
                    row.stream,
                    row.version,
                    "the stored link differs from the one recomputed from the previous link and this row's hash: "
                    "this chain row's hash or link, or a chain row before it, was changed or removed",
                )
            self.link = row.link
        if event is None:
            assert row is not None
            yield self._finding(
                position, row.stream, row.version, "a chain row without its event: the event was deleted"
            )
            self._advance(row.stream, row.version, row.hash, position)
            return
        stream, version = UUID(str(event.originator_id)), event.originator_version
        last = self.streams.get(stream)
        previous: bytes | None = GENESIS if version == 1 else None
        source = ""  # where the hash it extends is stored, when that is another event's row
        if last is None and version > 1:
            yield self._finding(position, stream, version, f"the stream starts at version {version}, not 1")
        elif last is not None and version > last.version + 1:
            missing = f"{last.version + 1}" + (f"..{version - 1}" if version - 1 > last.version + 1 else "")
            yield self._finding(position, stream, version, f"version(s) {missing} of the stream are missing")
        elif last is not None and version <= last.version:
            yield self._finding(
                position, stream, version, f"comes after version {last.version}: the stream's events are out of order"
            )
        elif last is not None:
            previous = last.hash
            source = f" (from this event and the hash of version {last.version} at position {last.position})"
        if row is None:
            yield self._finding(position, stream, version, "the event has no chain row")
            self._advance(stream, version, None, position)
            return
        if (row.stream, row.version) != (stream, version):
            yield self._finding(
                position,
                stream,
                version,
                f"the chain row at this position is for stream {row.stream} version {row.version}",
            )
            self._advance(stream, version, None, position)  # this event's own hash is not stored here
            return
        if previous is not None:
            try:
                recomputed = stream_hash(
                    previous, canonical_bytes(self.context, stream, version, event.topic, event.state, row.recorded_at)
                )
            except UnicodeDecodeError:
                yield self._finding(position, stream, version, "the stored state is not UTF-8 text")
            else:
                if recomputed != row.hash:
                    yield self._finding(
                        position,
                        stream,
                        version,
                        f"the stored hash {row.hash.hex()} differs from the recomputed {recomputed.hex()}{source}: "
                        "the event (topic, state or recording time) or its chain row was changed"
                        + (", or that hash" if source else "")
                        + ", or the event was copied from another log (the log's name is hashed)",
                    )
        self._advance(stream, version, row.hash, position)

    def _advance(self, stream: UUID, version: int, hash_: bytes | None, position: int) -> None:
        """Remember the stream's furthest version: one event out of order is named once, not its followers."""
        last = self.streams.get(stream)
        if last is None or version > last.version:
            self.streams[stream] = _Stream(version, hash_, position)


def _mistyped(event: Notification | None, row: ChainRow | None) -> str | None:
    """What in a read event or chain row is not of the type the store writes (SQLite keeps any), or None."""
    fields: list[tuple[str, object, type]] = []
    if event is not None:
        fields += [
            ("the event's state", event.state, bytes),
            ("the event's version", event.originator_version, int),
            ("the event's topic", event.topic, str),
        ]
    if row is not None:
        fields.append(("the chain row's version", row.version, int))
    for name, value, kind in fields:
        if not isinstance(value, kind):
            return f"{name} is {type(value).__name__} {str(value)[:40]!r}, not {kind.__name__}"
    return None


def _events_in(runs: list[tuple[int, int]], after: int, stop: int) -> int:
    """How many positions past `after` up to `stop` the runs of a log's events (`ChainedLog.runs`) hold."""
    return sum(max(0, min(last, stop) - max(first, after + 1) + 1) for first, last in runs)
