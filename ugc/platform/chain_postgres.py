"""The PostgreSQL events recorder that writes each event's chain row in the append's own transaction.

The library's append locks the context's events table (EXCLUSIVE), inserts and commits; this one
also reads the chain's last link and the stream hashes it extends right after taking that lock —
sent in the same pipeline as the lock and the insert, so reading them costs no extra round trip —
and inserts the chain rows before the COMMIT. Positions are handed out under the lock, so chaining
in position order is chaining in commit order, whichever process appends.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection, Cursor, InterfaceError, OperationalError
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from ugc.platform.chain import (
    GENESIS,
    ChainHead,
    ChainRow,
    RecordedEvent,
    StoredEntry,
    chain_entries,
    predecessors,
)

BACKLOG_BATCH = 5_000  # unchained events chained per transaction by `ugc migrate`


@dataclass
class _Asked:
    """The pipelined answers an append waits for: the log's heads and the stream hashes it extends."""

    heads: Cursor[DictRow]
    previous: Cursor[DictRow] | None


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` plus the context's chain table (`<app>_events_chain`)."""

    context = ""  # the context's name, hashed into every event: set by EventStores once constructed

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = f"{events_table_name}_chain"
        self.check_identifier_length(self.chain_table_name)
        self.context = events_table_name.removesuffix("_events")
        names = {
            "schema": Identifier(datastore.schema),
            "events": Identifier(events_table_name),
            "chain": Identifier(self.chain_table_name),
            "stream_index": Identifier(f"{self.chain_table_name}_stream_idx"),
        }

        def sql(text: str) -> Composed:
            return SQL(text).format(**names)

        self.sql_create_statements += [
            sql(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "notification_id bigint PRIMARY KEY, originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, recorded_at timestamptz, "
                "hash bytea NOT NULL, link bytea NOT NULL)"
            ),
            sql(
                "CREATE UNIQUE INDEX IF NOT EXISTS {stream_index} "
                "ON {schema}.{chain} (originator_id, originator_version)"
            ),
        ]
        self._heads_sql = sql(
            "SELECT (SELECT MAX(notification_id) FROM {schema}.{events}) AS events_head, "
            "clock_timestamp() AS now, h.notification_id, h.link, h.recorded_at "
            "FROM (SELECT 1) AS one LEFT JOIN "
            "(SELECT notification_id, link, recorded_at FROM {schema}.{chain} ORDER BY notification_id DESC LIMIT 1)"
            " AS h ON true"
        )
        self._previous_sql = sql(
            "SELECT originator_id, originator_version, hash FROM {schema}.{chain} "
            "WHERE (originator_id, originator_version) IN (SELECT * FROM unnest(%s::uuid[], %s::bigint[]))"
        )
        self._insert_chain_sql = sql(
            "INSERT INTO {schema}.{chain} "
            "(notification_id, originator_id, originator_version, recorded_at, hash, link) "
            "SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::bigint[], %s::timestamptz[], %s::bytea[], %s::bytea[])"
        )
        self._unchained_sql = sql(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
        )
        recorded = (
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
            "c.recorded_at, c.hash, c.link, p.hash AS previous_hash FROM {schema}.{events} AS e "
            "LEFT JOIN {schema}.{chain} AS c ON c.notification_id = e.notification_id "
            "AND c.originator_id = e.originator_id AND c.originator_version = e.originator_version "
            "LEFT JOIN {schema}.{chain} AS p "
            "ON p.originator_id = e.originator_id AND p.originator_version = e.originator_version - 1 "
        )
        self._stream_sql = sql(
            recorded + "WHERE e.originator_id = %s AND e.originator_version > %s AND e.originator_version <= %s "
            "ORDER BY e.originator_version"
        )
        self._range_sql = sql(
            recorded + "WHERE e.notification_id >= %s AND e.notification_id <= %s ORDER BY e.notification_id LIMIT %s"
        )
        self._chain_rows_sql = sql(
            "SELECT notification_id, originator_id, originator_version, recorded_at, hash, link "
            "FROM {schema}.{chain} WHERE notification_id >= %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        )
        self._lock_sql = self.lock_table_statements
        self._local = threading.local()

    # -- appending -------------------------------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's append (lock, NOTIFY, insert: one pipeline) with the chain rows added.

        A clash in the store (IntegrityError) is raised after the pipeline closes, as the library
        does; a failure to chain raises inside the transaction, so the events are not kept unchained.
        """
        assert not self.datastore.enable_db_functions, "the chain needs the table lock of the default path"
        if not stored_events:
            return []
        clash: Exception | None = None
        ids: Sequence[int] | None = None
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                with conn.cursor() as curs:
                    try:
                        self._lock_table(curs)
                        self._notify_channel(curs)
                        asked = self._ask(conn, stored_events)
                        PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events)
                        pipeline.sync()
                        ids = self._fetch_ids_after_insert_events(curs, stored_events)
                    except Exception as error:  # raised once the pipeline is closed (as the library does)
                        clash = error
                if clash is None:
                    assert ids is not None
                    self._chain(conn, asked, stored_events, ids)
            if clash is not None:
                raise clash
        return ids

    def _ask(self, conn: Connection[DictRow], stored_events: Sequence[StoredEvent]) -> _Asked:
        heads = conn.cursor()
        heads.execute(self._heads_sql, prepare=True)
        wanted = predecessors((UUID(str(e.originator_id)), e.originator_version) for e in stored_events)
        previous = None
        if wanted:
            previous = conn.cursor()
            previous.execute(self._previous_sql, ([s for s, _ in wanted], [v for _, v in wanted]), prepare=True)
        return _Asked(heads, previous)

    def _chain(
        self, conn: Connection[DictRow], asked: _Asked, stored_events: Sequence[StoredEvent], ids: Sequence[int]
    ) -> None:
        heads = asked.heads.fetchone()
        assert heads is not None
        previous = _hashes(asked.previous.fetchall()) if asked.previous is not None else {}
        entries = _entries(stored_events, ids)
        last_link = heads["link"] or GENESIS
        events_head = heads["events_head"] or 0
        if events_head > (heads["notification_id"] or 0):
            # Events appended without a chain row (before this code ran): chain them first, here,
            # under the lock, so the new events extend a whole chain.
            with conn.cursor() as cur:
                while self._chain_backlog(cur, BACKLOG_BATCH, stop=events_head):
                    pass
                head = self._head(cur)
                assert head is not None
                last_link = head.link
                wanted = predecessors((e.stream, e.version) for e in entries)
                cur.execute(self._previous_sql, ([s for s, _ in wanted], [v for _, v in wanted]))
                previous = _hashes(cur.fetchall())
        rows = chain_entries(self.context, entries, previous, last_link, heads["now"])
        with conn.cursor() as cur:
            self._insert_chain(cur, rows)

    def _insert_chain(self, cur: Cursor[DictRow], rows: Sequence[ChainRow]) -> None:
        cur.execute(
            self._insert_chain_sql,
            (
                [r.position for r in rows],
                [r.stream for r in rows],
                [r.version for r in rows],
                [r.recorded_at for r in rows],
                [r.hash for r in rows],
                [r.link for r in rows],
            ),
            prepare=True,
        )

    def _chain_backlog(self, cur: Cursor[DictRow], limit: int, stop: int = 2**62) -> int:
        """Chain up to `limit` events after the chain's head, up to position `stop`; the table lock must be held."""
        head = self._head(cur)
        cur.execute(self._unchained_sql, (head.position if head else 0, stop, limit))
        entries = [
            StoredEntry(
                r["notification_id"], r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])
            )
            for r in cur.fetchall()
        ]
        if not entries:
            return 0
        wanted = predecessors((e.stream, e.version) for e in entries)
        cur.execute(self._previous_sql, ([s for s, _ in wanted], [v for _, v in wanted]))
        rows = chain_entries(self.context, entries, _hashes(cur.fetchall()), head.link if head else GENESIS, None)
        self._insert_chain(cur, rows)
        return len(rows)

    def chain_backlog(self, limit: int = BACKLOG_BATCH) -> int:
        """Chain up to `limit` events stored before the chain existed, in one locked transaction;
        how many were chained (0: the chain is whole). Safe beside live appends and other migrators."""
        with self.datastore.transaction(commit=True) as cur:
            for statement in self._lock_sql:
                cur.execute(statement)
            return self._chain_backlog(cur, limit)

    # -- reading (no locks: safe beside live appends) ----------------------------------------------

    def _head(self, cur: Cursor[DictRow]) -> ChainHead | None:
        cur.execute(self._heads_sql)
        row = cur.fetchone()
        if row is None or row["notification_id"] is None:
            return None
        return ChainHead(row["notification_id"], bytes(row["link"]), row["recorded_at"])

    def chain_head(self) -> ChainHead | None:
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            return self._head(cur)

    def recorded_stream(self, stream: UUID, *, gt: int = 0, lte: int | None = None) -> list[RecordedEvent]:
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            cur.execute(self._stream_sql, (stream, gt, lte if lte is not None else 2**62), prepare=True)
            return [self._recorded(row) for row in cur.fetchall()]

    def recorded_range(self, start: int, stop: int, limit: int) -> list[RecordedEvent]:
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            cur.execute(self._range_sql, (start, stop, limit), prepare=True)
            return [self._recorded(row) for row in cur.fetchall()]

    def chain_rows(self, start: int, stop: int, limit: int) -> list[ChainRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            cur.execute(self._chain_rows_sql, (start, stop, limit), prepare=True)
            return [
                ChainRow(
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["recorded_at"],
                    bytes(r["hash"]),
                    bytes(r["link"]),
                )
                for r in cur.fetchall()
            ]

    def _recorded(self, row: DictRow) -> RecordedEvent:
        version = row["originator_version"]
        previous = GENESIS if version == 1 else _bytes(row["previous_hash"])
        return RecordedEvent(
            context=self.context,
            position=row["notification_id"],
            stream=row["originator_id"],
            version=version,
            topic=row["topic"],
            state=bytes(row["state"]),
            recorded_at=row["recorded_at"],
            hash=_bytes(row["hash"]),
            previous_hash=previous,
            link=_bytes(row["link"]),
        )


def _entries(stored_events: Sequence[StoredEvent], ids: Sequence[int]) -> list[StoredEntry]:
    return [
        StoredEntry(position, UUID(str(e.originator_id)), e.originator_version, e.topic, e.state)
        for e, position in zip(stored_events, ids, strict=True)
    ]


def _hashes(rows: Sequence[DictRow]) -> dict[tuple[UUID, int], bytes]:
    return {(r["originator_id"], r["originator_version"]): bytes(r["hash"]) for r in rows}


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)
