"""The hash chain over the event log: the recipe, in the standard library only.

Every stored event gets a *stream hash* chained to the previous event of its stream (what an
auditor holding one order's history can recompute), and every context's log a *link* chained in
position order (what catches a stream's removed tail, or events moved between streams). The README
("Audit: the hash chain") states the same recipe for third parties; `tests/` holds a standalone
script that follows it.

The hash covers the exact stored bytes of the event's state, so an upcaster (which changes how the
bytes are read, never the bytes) never changes a hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ugc.platform.dialect import Cursor, Query, Row

GENESIS = bytes(32)  # the "previous hash" of every stream's version 1 and the link before a log's first event
BACKLOG_BATCH = 5_000  # unchained events chained per transaction by `ugc migrate`


def format_time(moment: datetime | None) -> str | None:
    """The recording time as hashed: UTC, always six fractional digits, `Z` (or None before the chain)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(
    context: str, stream: UUID, version: int, topic: str, state: bytes, recorded_at: datetime | None
) -> bytes:
    """What a stream hash covers: one JSON object, keys sorted, no spaces, UTF-8, non-ASCII kept.

    Raises UnicodeDecodeError when `state` is not UTF-8 (the library only ever stores UTF-8 JSON).
    """
    document = {
        "context": context,
        "recorded_at": format_time(recorded_at),
        "state": state.decode("utf-8"),
        "stream": str(stream),
        "topic": topic,
        "version": version,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stream_hash(previous: bytes, canonical: bytes) -> bytes:
    """SHA-256(previous stream hash || canonical bytes); `previous` is GENESIS for version 1."""
    return hashlib.sha256(previous + canonical).digest()


def next_link(previous: bytes, hash_: bytes) -> bytes:
    """SHA-256(previous link || stream hash), in position order; `previous` is GENESIS at a log's start."""
    return hashlib.sha256(previous + hash_).digest()


@dataclass(frozen=True)
class StoredEntry:
    """An event as the log stores it, with the position (notification id) it was given."""

    position: int
    stream: UUID
    version: int
    topic: str
    state: bytes


@dataclass(frozen=True)
class ChainRow:
    """One event's row in its context's chain table."""

    position: int
    stream: UUID
    version: int
    recorded_at: datetime | None
    hash: bytes
    link: bytes


def chain_entries(
    context: str,
    entries: Iterable[StoredEntry],
    previous_hashes: Mapping[tuple[UUID, int], bytes],
    last_link: bytes,
    recorded_at: datetime | None,
) -> list[ChainRow]:
    """The chain rows of `entries` (any order; chained by position) after a log whose last link is
    `last_link`. `previous_hashes` holds the stored hash of (stream, version - 1) for every entry whose
    predecessor is not among `entries` and whose version is above 1, where there is one."""
    rows: list[ChainRow] = []
    latest: dict[UUID, tuple[int, bytes]] = {}
    link = last_link
    for entry in sorted(entries, key=lambda e: e.position):
        if entry.version == 1:
            previous = GENESIS
        elif (known := latest.get(entry.stream)) is not None and known[0] == entry.version - 1:
            previous = known[1]
        else:
            # A stream whose previous version is not stored (the library lets a stream start at any
            # version) chains from the genesis; `ugc verify` names the gap. Refusing the append
            # would make a damaged stream unwritable, not the damage undone.
            previous = previous_hashes.get((entry.stream, entry.version - 1), GENESIS)
        hash_ = stream_hash(
            previous, canonical_bytes(context, entry.stream, entry.version, entry.topic, entry.state, recorded_at)
        )
        link = next_link(link, hash_)
        latest[entry.stream] = (entry.version, hash_)
        rows.append(ChainRow(entry.position, entry.stream, entry.version, recorded_at, hash_, link))
    return rows


def predecessors(events: Iterable[tuple[UUID, int]]) -> list[tuple[UUID, int]]:
    """The (stream, version) whose stored hash `chain_entries` needs, of events given as (stream, version):
    each stream's first event's predecessor."""
    first: dict[UUID, int] = {}
    for stream, version in events:
        if stream not in first or version < first[stream]:
            first[stream] = version
    return [(stream, version - 1) for stream, version in first.items() if version > 1]


@dataclass(frozen=True)
class RecordedEvent:
    """A stored event with its place in the chain: what an audit record shows and an auditor re-hashes.

    `hash`, `link` and `recorded_at` are None when the event has no (matching) chain row; then
    `ugc verify` names it. `previous_hash` is GENESIS for version 1, None when the stream's previous
    version has no chain row. `recorded_at` is also None for events stored before the chain existed
    (chained later by `ugc migrate`: the store never recorded when they came).
    """

    context: str
    position: int
    stream: UUID
    version: int
    topic: str
    state: bytes
    recorded_at: datetime | None
    hash: bytes | None
    previous_hash: bytes | None
    link: bytes | None


@dataclass(frozen=True)
class ChainHead:
    """A context's last chain row: its position, link and recording time."""

    position: int
    link: bytes
    recorded_at: datetime | None


class ChainedLog(Protocol):
    """What a context's chained events recorder offers to read (both backends' recorders have it)."""

    context: str

    def chain_head(self) -> ChainHead | None: ...

    def select_streams(
        self, after: Mapping[UUID, int], beside: Query | None = None
    ) -> tuple[dict[UUID, list[StoredEvent]], Row | None]: ...

    def recorded_stream(self, stream: UUID, *, gt: int = 0, lte: int | None = None) -> list[RecordedEvent]: ...

    def recorded_range(self, start: int, stop: int, limit: int) -> list[RecordedEvent]: ...

    def chain_rows(self, start: int, stop: int, limit: int) -> list[ChainRow]: ...

    def recorded_age(self, after: int, on: Cursor | None = None) -> float | None:
        """Seconds since the first event past position `after` was recorded, on the clock that
        recorded it (PostgreSQL's; on SQLite this host's); None without one or its recording time.
        On PostgreSQL read on `on` when given, a cursor of the caller's on the log's database
        (`Database.probing`'s); a SQLite log is a file of its own, read through its store."""
        ...

    def chain_backlog(self, limit: int = ...) -> int: ...

    def runs(self) -> list[tuple[int, int]]:
        """The log's events as runs of consecutive positions, (first, last) each, in order: one run,
        but where positions hold no event (a restore's jump to its floor: `restore_floors.py`; on
        PostgreSQL, positions drawn by appends that rolled back). A log's head is no count of its
        events; these are, in one read of its positions."""
        ...
