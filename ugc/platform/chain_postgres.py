"""The PostgreSQL events recorder that writes each event's chain row in the append's own transaction.

The library's append locks the context's events table (EXCLUSIVE), inserts and commits; this one
also reads the chain's last link and the stream hashes it extends right after taking that lock —
sent in the same pipeline as the lock and the insert, so reading them costs no extra round trip;
a stream's hash this process appended last is not read again — and inserts the chain rows before
the COMMIT. Positions are handed out under the lock, so chaining
in position order is chaining in commit order, whichever process appends.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg.sql import SQL, Composed, Identifier

from ugc.platform import (
    dialect,
    postgres_driver,  # noqa: F401 - psycopg configured before the library connects
)
from ugc.platform.cache import LRU
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
from ugc.platform.database import STORE_OPTIONS
from ugc.platform.dead_connections import again_when_connection_lost, connection_lost, retried_when_connection_lost
from ugc.platform.dialect import Query, Row

# Streams whose last hash this process keeps from its own appends, per context (~330 bytes each,
# 3.3 MB full): an order's follow-up commands, which this process's group commit tends to append (it
# keeps their aggregates too), then find the hash they extend here rather than by two index lookups
# under the table lock.
KEPT_HASHES = 10_000


# The library's reads without its retry (ours is `retried_when_connection_lost`).
_library_select_events = inspect.unwrap(PostgresApplicationRecorder.select_events)
_library_select_notifications = inspect.unwrap(PostgresApplicationRecorder.select_notifications)


class _LostWhileCommitting(Exception):
    """An append's connection broke once its COMMIT was on its way: whether the events were stored
    is not known, so it is not tried again (`error` is what the caller gets)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` plus the context's chain table (`<app>_events_chain`)."""

    context = ""  # the context's name, hashed into every event: set by EventStores once constructed

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        # The library's pool takes no session options; its connections are made from these kwargs,
        # lazily, at the first use of the store (the library's constructor below may be it).
        connect_with = datastore.pool.kwargs
        assert isinstance(connect_with, dict), "the library gives its pool a dict"
        connect_with["options"] = STORE_OPTIONS
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = f"{events_table_name}_chain"
        self.check_identifier_length(self.chain_table_name)
        self.context = events_table_name.removesuffix("_events")
        names = {
            "schema": Identifier(datastore.schema),
            "events": Identifier(events_table_name),
            "chain": Identifier(self.chain_table_name),
        }

        def composed(text: str) -> Composed:
            return SQL(text).format(**names)

        def sql(text: str) -> bytes:  # composed once: composing costs CPU on every execution
            return SQL(text).format(**names).as_bytes(None)

        self.sql_create_statements += [
            composed(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "notification_id bigint PRIMARY KEY, originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, recorded_at timestamptz, "
                "hash bytea NOT NULL, link bytea NOT NULL)"
            ),
        ]
        self._heads_sql = sql(
            "SELECT (SELECT MAX(notification_id) FROM {schema}.{events}) AS events_head, "
            "clock_timestamp() AS now, h.notification_id, h.link, h.recorded_at "
            "FROM (SELECT 1) AS one LEFT JOIN "
            "(SELECT notification_id, link, recorded_at FROM {schema}.{chain} ORDER BY notification_id DESC LIMIT 1)"
            " AS h ON true"
        )
        # The stored hashes of given (stream, version)s, found through the events table's primary key:
        # an index of the chain's own on them would cost every append one more index insert. One
        # lookup per pair (LATERAL, kept from being flattened into a join by its LIMIT), whatever the
        # statistics: as a join, a log never analyzed (autovacuum off, or not yet run) was hash-joined
        # over a sequential scan of the whole chain, 26 ms and ~1,000 buffers per append of a
        # follow-up command after 80,000 events, every append of the log waiting behind it under
        # its table lock.
        previous_from = (
            "FROM json_array_elements(%s::json) AS r, LATERAL (SELECT c.originator_id, c.originator_version, "
            "c.hash FROM {schema}.{events} AS e JOIN {schema}.{chain} AS c ON c.notification_id = e.notification_id "
            "AND c.originator_id = e.originator_id AND c.originator_version = e.originator_version "
            "WHERE e.originator_id = (r->>0)::uuid AND e.originator_version = (r->>1)::bigint LIMIT 1) AS c"
        )
        # The library's INSERT, with what the chain needs read in the same statement: the log's and
        # the chain's heads before it (a data-modifying CTE's rows are invisible to the rest of its
        # statement) and the stream hashes the new events extend. One statement rather than three:
        # each statement cost ~100 µs of client CPU in the append (profiled).
        self._append_sql = sql(
            "WITH inserted AS (INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT (r->>0)::uuid, (r->>1)::bigint, r->>2, decode(r->>3, 'hex') "
            "FROM json_array_elements(%s::json) AS r "
            "RETURNING notification_id) "
            "SELECT ARRAY(SELECT notification_id FROM inserted ORDER BY notification_id) AS ids, "
            "(SELECT MAX(notification_id) FROM {schema}.{events}) AS events_head, "
            "clock_timestamp() AS now, h.notification_id, h.link, "
            "(SELECT json_agg(json_build_array(c.originator_id, c.originator_version, encode(c.hash, 'hex'))) "
            + previous_from
            + ") AS previous "
            "FROM (SELECT 1) AS one LEFT JOIN "
            "(SELECT notification_id, link FROM {schema}.{chain} ORDER BY notification_id DESC LIMIT 1) AS h ON true"
        )
        # Rows go as one JSON text parameter (the events too, above): psycopg's dumping of six arrays
        # cost about 200 µs of CPU per append (profiled), more than everything else the chain adds,
        # and the events' array of the library's composite type was dumped field by field in Python
        # too, after the table lock was sent (3.5% of a worker's CPU under lifecycles, profiled).
        self._previous_sql = sql("SELECT c.originator_id, c.originator_version, c.hash " + previous_from)
        self._insert_chain_sql = sql(
            "INSERT INTO {schema}.{chain} "
            "(notification_id, originator_id, originator_version, recorded_at, hash, link) "
            "SELECT (r->>0)::bigint, (r->>1)::uuid, (r->>2)::bigint, (r->>3)::timestamptz, "
            "decode(r->>4, 'hex'), decode(r->>5, 'hex') FROM json_array_elements(%s::json) AS r"
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
            "LEFT JOIN {schema}.{events} AS pe "
            "ON pe.originator_id = e.originator_id AND pe.originator_version = e.originator_version - 1 "
            "LEFT JOIN {schema}.{chain} AS p ON p.notification_id = pe.notification_id "
            "AND p.originator_id = pe.originator_id AND p.originator_version = pe.originator_version "
        )
        self._stream_sql = sql(
            recorded + "WHERE e.originator_id = %s AND e.originator_version > %s AND e.originator_version <= %s "
            "ORDER BY e.originator_version"
        )
        self._range_sql = sql(
            recorded + "WHERE e.notification_id >= %s AND e.notification_id <= %s ORDER BY e.notification_id LIMIT %s"
        )
        # Several streams' events past a version each, in one read (GroupCommit loads its group's
        # aggregates with it): one keyed lookup per stream, as for the hashes above.
        self._streams_sql = sql(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM json_array_elements(%s::json) AS r, "
            "LATERAL (SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE originator_id = (r->>0)::uuid AND originator_version > (r->>1)::bigint "
            "ORDER BY originator_version) AS e"
        )
        self._notifications_sql = sql(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
        )
        self._chain_rows_sql = sql(
            "SELECT notification_id, originator_id, originator_version, recorded_at, hash, link "
            "FROM {schema}.{chain} WHERE notification_id >= %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        )
        # Age and now on the one clock that recorded it: the database's (readiness' lag).
        # Text, not bytes: it runs on a caller's cursor too (`recorded_age`).
        self._age_sql = composed(
            "SELECT EXTRACT(EPOCH FROM clock_timestamp() - recorded_at)::float8 AS age FROM {schema}.{chain} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT 1"
        ).as_string()
        # Consecutive positions share `position - its rank` (gaps and islands): one scan of the
        # primary key's index, a row per run.
        self._runs_sql = sql(
            "SELECT MIN(notification_id), MAX(notification_id) FROM (SELECT notification_id, "
            "notification_id - ROW_NUMBER() OVER (ORDER BY notification_id) AS island "
            "FROM {schema}.{events}) AS ranked GROUP BY island ORDER BY 1"
        )
        self._lock_sql = self.lock_table_statements
        # stream -> (version, hash) of its last event as this process appended it. A committed chain
        # row never changes, so a hash kept here is the stored one for as long as the stream's
        # version is the one kept; an append on a newer version looks its predecessor up.
        self._last_hashes = LRU[UUID, tuple[int, bytes]](KEPT_HASHES)

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        """The library's, less the indexes that exist already (`dialect.created_index`): every
        process's start migrates, and the events table's index would otherwise have it wait for the
        appends under way (their table lock) and hold up the ones after it."""
        for statement in self.sql_create_statements:
            text = statement.as_string()
            if "CREATE TYPE" in text:  # made by `create_table` before this, each in its own transaction
                continue
            index = dialect.created_index(text)
            if index is None or not dialect.relation_exists(curs, f"{self.datastore.schema}.{index}"):
                curs.execute(statement, prepare=False)

    # -- reading ---------------------------------------------------------------------------------

    @retried_when_connection_lost
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The library's (a repository's load), retried only when its connection was lost: its own
        retry, ten times on any OperationalError, made a lock wait that ran out (STORE_OPTIONS) ten."""
        events: Sequence[StoredEvent] = _library_select_events(
            self, originator_id, gt=gt, lte=lte, desc=desc, limit=limit
        )
        return events

    @retried_when_connection_lost
    def select_streams(
        self, after: Mapping[UUID, int], beside: Query | None = None
    ) -> tuple[dict[UUID, list[StoredEvent]], Row | None]:
        """The events of each stream of `after` past the version given for it, oldest first, and the
        row of `beside` (a SELECT of one row on this database: a group's numbers, say), if given,
        read in the same round trip."""
        streams: dict[UUID, list[StoredEvent]] = {stream: [] for stream in after}
        if not after and beside is None:
            return streams, None
        row: Row | None = None
        with self.datastore.get_connection() as conn, conn.pipeline():
            with conn.cursor(row_factory=tuple_row) as curs, conn.cursor(row_factory=dict_row) as other:
                if after:
                    curs.execute(self._streams_sql, (_pairs(list(after.items())),), prepare=True)
                if beside is not None:
                    # Prepared at once, as the store's own statements are: a group's is one of a few
                    # texts (which logs' heads, which kinds of numbers, in `GroupCommit`'s order),
                    # each then planned once (`STORE_OPTIONS`).
                    other.execute(*beside, prepare=True)
                for stream, version, topic, state in curs.fetchall() if after else ():
                    streams[stream].append(StoredEvent(stream, version, topic, bytes(state)))
                row = other.fetchone() if beside is not None else None
        return streams, row

    # -- appending -------------------------------------------------------------------------------

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's append (lock, NOTIFY, insert: one pipeline) with the chain rows added.

        A clash in the store (IntegrityError) is raised after the pipeline closes, as the library
        does; a failure to chain raises inside the transaction, so the events are not kept unchained.
        Appended again on another connection when the pooled one was found dead before the COMMIT
        was sent (nothing was stored); not when it broke during the COMMIT (the events may have
        been), nor when a lock wait ran out (POSTGRES_LOCK_TIMEOUT: the caller's 503).
        """
        assert not self.datastore.enable_db_functions, "the chain needs the table lock of the default path"
        if not stored_events:
            return []
        events = json.dumps(
            [[str(e.originator_id), e.originator_version, e.topic, e.state.hex()] for e in stored_events]
        )
        wanted = predecessors((UUID(str(e.originator_id)), e.originator_version) for e in stored_events)
        kept = self._kept_hashes(wanted)
        looked_up = _pairs([pair for pair in wanted if pair not in kept])  # made before the lock is asked for
        try:
            return again_when_connection_lost(
                lambda: self._append(stored_events, events, looked_up, kept), self.datastore.pool.check
            )
        except _LostWhileCommitting as lost:
            raise lost.error from None

    def _append(
        self, stored_events: Sequence[StoredEvent], events: str, looked_up: str, kept: dict[tuple[UUID, int], bytes]
    ) -> list[int]:
        """One attempt of `insert_events`: a connection lost once the COMMIT was on its way is
        raised as `_LostWhileCommitting`, which is not tried again."""
        clash: Exception | None = None
        answer: DictRow | None = None
        chained: list[ChainRow] = []
        committing = False
        try:
            with self.datastore.get_connection() as conn:
                with conn.pipeline() as pipeline, conn.transaction():
                    with conn.cursor() as curs:
                        try:
                            self._lock_table(curs)
                            self._notify_channel(curs)
                            curs.execute(self._append_sql, (events, looked_up), prepare=True)
                            pipeline.sync()
                            answer = curs.fetchone()
                        except Exception as error:  # raised once the pipeline is closed (as the library does)
                            clash = error
                    if clash is None:
                        assert answer is not None
                        chained = self._chain(conn, answer, stored_events, kept)
                    elif connection_lost(clash):
                        raise clash  # before the COMMIT: nothing was stored
                    committing = True
                if clash is not None:
                    raise clash
        except Exception as error:
            if committing and connection_lost(error):
                raise _LostWhileCommitting(error) from None  # no cause: `connection_lost` would see it
            raise
        self._keep_hashes(chained)  # committed
        assert answer is not None
        return list(answer["ids"])

    def _kept_hashes(self, wanted: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], bytes]:
        """The hashes of `wanted` (stream, version)s that this process appended last on their streams."""
        kept: dict[tuple[UUID, int], bytes] = {}
        for stream, version in wanted:
            last = self._last_hashes.get(stream)
            if last is not None and last[0] == version:
                kept[stream, version] = last[1]
        return kept

    def _keep_hashes(self, rows: Sequence[ChainRow]) -> None:
        """Keep each stream's last hash of `rows`, chained in position order. Of two appends of one
        stream that race here, the older may stay: a version behind, it is never used, not wrong."""
        for row in rows:
            self._last_hashes.put(row.stream, (row.version, row.hash))

    def _chain(
        self,
        conn: Connection[DictRow],
        answer: DictRow,
        stored_events: Sequence[StoredEvent],
        kept: Mapping[tuple[UUID, int], bytes],
    ) -> list[ChainRow]:
        """Write the chain rows of `stored_events` (at `answer`'s positions), extending the hashes `kept`
        and those `answer` read; the rows written."""
        previous = {
            **kept,
            **{
                (UUID(stream), int(version)): bytes.fromhex(hash_)
                for stream, version, hash_ in answer["previous"] or []
            },
        }
        entries = _entries(stored_events, answer["ids"])
        last_link = bytes(answer["link"]) if answer["link"] is not None else GENESIS
        if _unchained(answer):
            # Events appended without a chain row (before this code ran): chain them first, here,
            # under the lock, so the new events extend a whole chain.
            with conn.cursor() as cur:
                while self._chain_backlog(cur, BACKLOG_BATCH, stop=answer["events_head"]):
                    pass
                head = self.head_in(cur)
                assert head is not None
                last_link = head.link
                wanted = predecessors((e.stream, e.version) for e in entries)
                cur.execute(self._previous_sql, (_pairs(wanted),))
                previous = _hashes(cur.fetchall())
        rows = chain_entries(self.context, entries, previous, last_link, answer["now"])
        with conn.cursor() as cur:
            self._insert_chain(cur, rows)
        return rows

    def _insert_chain(self, cur: Cursor[DictRow], rows: Sequence[ChainRow]) -> None:
        rows_json = json.dumps(
            [
                [r.position, str(r.stream), r.version, format_time(r.recorded_at), r.hash.hex(), r.link.hex()]
                for r in rows
            ]
        )
        cur.execute(self._insert_chain_sql, (rows_json,), prepare=True)

    def _chain_backlog(self, cur: Cursor[DictRow], limit: int, stop: int = 2**62) -> int:
        """Chain up to `limit` events after the chain's head, up to position `stop`; the table lock must be held."""
        head = self.head_in(cur)
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
        cur.execute(self._previous_sql, (_pairs(wanted),))
        rows = chain_entries(self.context, entries, _hashes(cur.fetchall()), head.link if head else GENESIS, None)
        self._insert_chain(cur, rows)
        return len(rows)

    def chain_backlog(self, limit: int = BACKLOG_BATCH) -> int:
        """Chain up to `limit` events stored before the chain existed, in one locked transaction;
        how many were chained (0: the chain is whole). Safe beside live appends and other migrators.

        A whole chain is told without the lock: a live append chains its own events in its own
        transaction, so one snapshot whose chain reaches the log's head has nothing to chain. Every
        process's start runs this for every log (`migrate`); with the lock each one waited for the
        appends under way and held up the next ones, a worker's restart stalling every context's
        writes in turn."""
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            cur.execute(self._heads_sql)
            heads = cur.fetchone()
        if heads is None or not _unchained(heads):
            return 0
        with self.datastore.transaction(commit=True) as cur:
            for statement in self._lock_sql:
                cur.execute(statement)
            return self._chain_backlog(cur, limit)

    # -- reading (no locks: safe beside live appends) ----------------------------------------------

    def head_in(self, cur: Cursor[DictRow]) -> ChainHead | None:
        """The last chain row as `cur`'s transaction sees it (a backup reads it in pg_dump's snapshot)."""
        cur.execute(self._heads_sql)
        row = cur.fetchone()
        if row is None or row["notification_id"] is None:
            return None
        return ChainHead(row["notification_id"], bytes(row["link"]), row["recorded_at"])

    def chain_head(self) -> ChainHead | None:
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            return self.head_in(cur)

    @retried_when_connection_lost
    def runs(self) -> list[tuple[int, int]]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(self._runs_sql)
            return [(int(first), int(last)) for first, last in cur.fetchall()]

    @retried_when_connection_lost
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's, its SQL composed once and its rows read as tuples: a replay reads every
        event of the log through here (a dict per row was a sixth of reading the log)."""
        if topics:
            chosen: Sequence[Notification] = _library_select_notifications(
                self, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
            return chosen
        after = -1 if start is None else start - 1 if inclusive_of_start else start
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(self._notifications_sql, (after, 2**62 if stop is None else stop, limit), prepare=True)
            return [
                Notification(id=id_, originator_id=stream, originator_version=version, topic=topic, state=bytes(state))
                for id_, stream, version, topic, state in cur.fetchall()
            ]

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

    def recorded_age(self, after: int, on: dialect.Cursor | None = None) -> float | None:
        if on is not None:
            found = on.execute(self._age_sql, (after,)).fetchone()
            return None if found is None else found["age"]
        with self.datastore.get_connection() as conn, conn.cursor() as cur:
            row = cur.execute(self._age_sql, (after,), prepare=True).fetchone()
        return None if row is None else row["age"]

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


def _unchained(heads: DictRow) -> bool:
    """Whether a row of the log's and the chain's heads (`events_head`, the chain's `notification_id`)
    shows events stored past the chain's head: appended before the chain existed."""
    return bool((heads["events_head"] or 0) > (heads["notification_id"] or 0))


def _pairs(wanted: Sequence[tuple[UUID, int]]) -> str:
    return json.dumps([[str(stream), version] for stream, version in wanted])


def _hashes(rows: Sequence[DictRow]) -> dict[tuple[UUID, int], bytes]:
    return {(r["originator_id"], r["originator_version"]): bytes(r["hash"]) for r in rows}


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)
