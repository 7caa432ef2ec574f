"""The SQLite events recorder that writes each event's chain row in the append's own transaction.

SQLite has one writer per database file: the append's first INSERT takes the write lock (and, in
WAL mode, the latest snapshot), so the chain's head read right after it is the head every later
append extends. Positions are the events table's rowids, as the library's notification ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from ugc.platform.chain import (
    BACKLOG_BATCH,
    GENESIS,
    ChainHead,
    ChainRow,
    RecordedEvent,
    StoredEntry,
    chain_entries,
    format_time,
    predecessors,
)
from ugc.platform.dialect import Cursor, Query, Row

CHAIN_TABLE = "stored_events_chain"
# After a restore, the position the log's next event takes at least (`restore_floors.py`): one row,
# in a log restored by this code only. The events table has no AUTOINCREMENT to raise.
FLOOR_TABLE = "stored_events_floor"

_RECORDED = (
    "SELECT e.rowid AS notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
    "c.recorded_at, c.hash, c.link, p.hash AS previous_hash FROM stored_events AS e "
    f"LEFT JOIN {CHAIN_TABLE} AS c ON c.notification_id = e.rowid "
    "AND c.originator_id = e.originator_id AND c.originator_version = e.originator_version "
    "LEFT JOIN stored_events AS pe "
    "ON pe.originator_id = e.originator_id AND pe.originator_version = e.originator_version - 1 "
    f"LEFT JOIN {CHAIN_TABLE} AS p ON p.notification_id = pe.rowid "
    "AND p.originator_id = pe.originator_id AND p.originator_version = pe.originator_version "
)


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """`SQLiteApplicationRecorder` plus the chain table in the context's own database file."""

    context = ""  # the context's name, hashed into every event: set by EventStores once constructed

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        assert events_table_name == "stored_events", "the chain's statements name the library's fixed table"
        super().__init__(datastore, events_table_name)
        self._past_floor = False  # this process saw an append land at or past FLOOR_TABLE's floor

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (notification_id INTEGER PRIMARY KEY, "
            "originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, recorded_at TEXT, "
            "hash BLOB NOT NULL, link BLOB NOT NULL)",
        ]

    # -- appending -------------------------------------------------------------------------------

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        ids = [int(i) for i in super()._insert_events(c, stored_events, **kwargs) or []]
        if not ids:
            return ids
        if not self._past_floor:
            ids = self._moved_to_floor(c, ids)
        c.execute("SELECT MAX(rowid) FROM stored_events WHERE rowid < ?", (min(ids),))
        before = c.fetchone()[0] or 0
        head = self._head(c)
        if before > (head.position if head else 0):
            # Events appended without a chain row (before this code ran): chain them first, under
            # the write lock this append holds, so the new events extend a whole chain.
            while self._chain_backlog(c, BACKLOG_BATCH, stop=before):
                pass
            head = self._head(c)
        entries = [
            StoredEntry(position, UUID(str(e.originator_id)), e.originator_version, e.topic, e.state)
            for e, position in zip(stored_events, ids, strict=True)
        ]
        previous = self._previous(c, predecessors((e.stream, e.version) for e in entries))
        now = datetime.now(UTC)
        self._insert_chain(c, chain_entries(self.context, entries, previous, head.link if head else GENESIS, now))
        return ids

    def _moved_to_floor(self, c: SQLiteCursor, ids: list[int]) -> list[int]:
        """The positions of the events just inserted at `ids`, moved up to the floor a restore set if
        they are short of it: the first append after the restore jumps past every position the
        given-up events had, and SQLite numbers the ones after from there. Asked under the write lock
        the inserts took, until an append of this process lands at the floor or past it (one lookup
        per process where no restore set one): an append whose transaction is rolled back asks again."""
        c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FLOOR_TABLE,))
        floor = 0
        if c.fetchone() is not None:
            c.execute(f"SELECT MAX(position) FROM {FLOOR_TABLE}")
            floor = c.fetchone()[0] or 0
        if ids[0] >= floor:
            self._past_floor = True
            return ids
        shift = floor - ids[0]
        c.execute("UPDATE stored_events SET rowid = rowid + ? WHERE rowid >= ?", (shift, ids[0]))
        return [position + shift for position in ids]

    def _previous(self, c: SQLiteCursor, wanted: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], bytes]:
        if not wanted:
            return {}
        pairs = ",".join("(?,?)" for _ in wanted)
        # Through the events table's primary key: an index of the chain's own would cost every append.
        c.execute(
            f"SELECT c.originator_id, c.originator_version, c.hash FROM stored_events AS e JOIN {CHAIN_TABLE} AS c "
            "ON c.notification_id = e.rowid AND c.originator_id = e.originator_id "
            "AND c.originator_version = e.originator_version "
            f"WHERE (e.originator_id, e.originator_version) IN (VALUES {pairs})",
            [value for stream, version in wanted for value in (stream.hex, version)],
        )
        return {(UUID(r["originator_id"]), r["originator_version"]): bytes(r["hash"]) for r in c.fetchall()}

    def _insert_chain(self, c: SQLiteCursor, rows: Sequence[ChainRow]) -> None:
        c.executemany(
            f"INSERT INTO {CHAIN_TABLE} (notification_id, originator_id, originator_version, recorded_at, hash, link) "
            "VALUES (?,?,?,?,?,?)",
            [(r.position, r.stream.hex, r.version, format_time(r.recorded_at), r.hash, r.link) for r in rows],
        )

    def _chain_backlog(self, c: SQLiteCursor, limit: int, stop: int | None = None) -> int:
        """Chain up to `limit` events after the chain's head (up to position `stop`); the write lock must be held."""
        head = self._head(c)
        c.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?",
            (head.position if head else 0, stop if stop is not None else 2**62, limit),
        )
        entries = [
            StoredEntry(r["rowid"], UUID(r["originator_id"]), r["originator_version"], r["topic"], bytes(r["state"]))
            for r in c.fetchall()
        ]
        if not entries:
            return 0
        previous = self._previous(c, predecessors((e.stream, e.version) for e in entries))
        rows = chain_entries(self.context, entries, previous, head.link if head else GENESIS, None)
        self._insert_chain(c, rows)
        return len(rows)

    def chain_backlog(self, limit: int = BACKLOG_BATCH) -> int:
        """Chain up to `limit` events stored before the chain existed, in one write transaction;
        how many were chained (0: the chain is whole). Safe beside live appends and other migrators."""
        with self.datastore.transaction(commit=True) as c:
            # A write that changes nothing takes the write lock (and the latest snapshot) before any read.
            c.execute(f"DELETE FROM {CHAIN_TABLE} WHERE 0")
            return self._chain_backlog(c, limit)

    # -- reading (no locks: safe beside live appends) ----------------------------------------------

    def _head(self, c: SQLiteCursor) -> ChainHead | None:
        c.execute(f"SELECT notification_id, link, recorded_at FROM {CHAIN_TABLE} ORDER BY notification_id DESC LIMIT 1")
        row = c.fetchone()
        if row is None:
            return None
        return ChainHead(row["notification_id"], bytes(row["link"]), _time(row["recorded_at"]))

    def select_streams(
        self, after: Mapping[UUID, int], beside: Query | None = None
    ) -> tuple[dict[UUID, list[StoredEvent]], Row | None]:
        """The events of each stream of `after` past the version given for it, oldest first: a query
        per stream, each a lookup in a local file (PostgreSQL's recorder does it in one round trip).
        Nothing is read beside them here: SQLite's reads cost no round trip to share."""
        if beside is not None:
            raise ValueError("SQLite reads no statement beside the streams")
        return {stream: list(self.select_events(stream, gt=version)) for stream, version in after.items()}, None

    def chain_head(self) -> ChainHead | None:
        with self.datastore.transaction(commit=False) as c:
            return self._head(c)

    def runs(self) -> list[tuple[int, int]]:
        with self.datastore.transaction(commit=False) as c:
            # Consecutive positions share `position - its rank` (gaps and islands).
            c.execute(
                "SELECT MIN(rowid), MAX(rowid) FROM (SELECT rowid, "
                "rowid - ROW_NUMBER() OVER (ORDER BY rowid) AS island FROM stored_events) GROUP BY island ORDER BY 1"
            )
            return [(int(first), int(last)) for first, last in c.fetchall()]

    def recorded_stream(self, stream: UUID, *, gt: int = 0, lte: int | None = None) -> list[RecordedEvent]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                _RECORDED + "WHERE e.originator_id = ? AND e.originator_version > ? AND e.originator_version <= ? "
                "ORDER BY e.originator_version",
                (stream.hex, gt, lte if lte is not None else 2**62),
            )
            return [self._recorded(row) for row in c.fetchall()]

    def recorded_range(self, start: int, stop: int, limit: int) -> list[RecordedEvent]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_RECORDED + "WHERE e.rowid >= ? AND e.rowid <= ? ORDER BY e.rowid LIMIT ?", (start, stop, limit))
            return [self._recorded(row) for row in c.fetchall()]

    def chain_rows(self, start: int, stop: int, limit: int) -> list[ChainRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT notification_id, originator_id, originator_version, recorded_at, hash, link "
                f"FROM {CHAIN_TABLE} WHERE notification_id >= ? AND notification_id <= ? "
                "ORDER BY notification_id LIMIT ?",
                (start, stop, limit),
            )
            return [
                ChainRow(
                    r["notification_id"],
                    UUID(r["originator_id"]),
                    r["originator_version"],
                    _time(r["recorded_at"]),
                    bytes(r["hash"]),
                    bytes(r["link"]),
                )
                for r in c.fetchall()
            ]

    def recorded_age(self, after: int, on: Cursor | None = None) -> float | None:
        # Recorded by this host's clock (chain_entries' `now` above): every process of a SQLite
        # database shares the host, so this clock is the one that recorded it.
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT recorded_at FROM {CHAIN_TABLE} WHERE notification_id > ? ORDER BY notification_id LIMIT 1",
                (after,),
            )
            row = c.fetchone()
        recorded = None if row is None else _time(row["recorded_at"])
        return None if recorded is None else (datetime.now(UTC) - recorded).total_seconds()

    def _recorded(self, row: sqlite3.Row) -> RecordedEvent:
        version = row["originator_version"]
        previous = GENESIS if version == 1 else _bytes(row["previous_hash"])
        return RecordedEvent(
            context=self.context,
            position=row["notification_id"],
            stream=UUID(row["originator_id"]),
            version=version,
            topic=row["topic"],
            state=bytes(row["state"]),
            recorded_at=_time(row["recorded_at"]),
            hash=_bytes(row["hash"]),
            previous_hash=previous,
            link=_bytes(row["link"]),
        )


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)
