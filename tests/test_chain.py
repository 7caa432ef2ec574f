"""The chain as the store writes it: under group commit, over a log stored before the chain, and the
checkpoints the projection leader signs (both backends)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import get_topic

from tests.backends import DATA_KEY, fresh_database
from tests.conftest import Api
from tests.orders_world import a_deal
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.chain import GENESIS, ChainHead, canonical_bytes, next_link, stream_hash
from ugc.platform.chain_postgres import ChainedPostgresRecorder
from ugc.platform.checkpoints import PeriodicCheckpoints, read_checkpoint, signature
from ugc.platform.database import Database
from ugc.platform.log_verify import ChainCheck, Finding
from ugc.platform.store import EventStores, Orders, eventsourcing_settings
from ugc.wiring import migrate, order_commands


def verified(stores: EventStores) -> tuple[int, list[Finding]]:
    """Every log checked as `ugc verify` does: how many events, and the findings."""
    findings, events = [], 0
    for name, app in stores.applications.items():
        check = ChainCheck(name, app.recorder, stores.chained(name))
        findings += list(check.run(check.head(), lambda _: None))
        events += check.checked
    return events, findings


def test_orders_placed_concurrently_in_shared_transactions_chain_clean(
    api: Api, settings: Settings, clock: MovableClock
) -> None:
    deal = a_deal(api)
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        orders = order_commands(settings, stores, db, clock)
        due = date.today() + timedelta(days=10)
        with ThreadPoolExecutor(max_workers=16) as pool:
            placed = list(
                pool.map(
                    lambda i: orders.place(deal.buyer["id"], deal.service["id"], f"заказ {i}", due, []), range(120)
                )
            )
        recorded = [stores.recorded_events("orders", p.order.id) for p in placed]
        assert all(len(events) == 1 and events[0].hash is not None for events in recorded)
        transactions = {events[0].recorded_at for events in recorded}  # one recording time per append
        assert len(transactions) < len(placed)  # group commit put several orders in one transaction
        events, findings = verified(stores)
        assert findings == [] and events >= len(placed)
    finally:
        stores.close()
        db.close()
    # The projection leader of the app under test signed the heads when it started leading.
    deadline = time.monotonic() + 10
    while not list(settings.audit_dir.glob("checkpoint-*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [path, *_] = sorted(settings.audit_dir.glob("checkpoint-*.json"))
    assert read_checkpoint(path, (settings.audit_key,)).signed


def test_a_log_stored_before_the_chain_is_chained_by_migrate_and_by_the_next_append(
    backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as url:
        plain = PostgresApplicationRecorder if backend == "postgres" else SQLiteApplicationRecorder
        old = Orders(
            env=eventsourcing_settings(url, "orders", create_table=True)
            | {"APPLICATION_RECORDER_TOPIC": get_topic(plain)}
        )
        a, b = uuid4(), uuid4()
        for stream, version in [(a, 1), (a, 2), (b, 1), (a, 3), (b, 2)]:
            old.recorder.insert_events([StoredEvent(stream, version, "ugc.Order.Updated", b'{"v":%d}' % version)])

        stores = EventStores(url, create_table=True, data_key=DATA_KEY)  # the chain's tables, empty
        try:
            assert [stores.chained("orders").chain_backlog(2) for _ in range(4)] == [2, 2, 1, 0]
            recorded = stores.recorded_events("orders", a)
            assert [e.recorded_at for e in recorded] == [None, None, None]  # the store never recorded when
            expected, previous = [], GENESIS
            for e in recorded:
                previous = stream_hash(previous, canonical_bytes("orders", a, e.version, e.topic, e.state, None))
                expected.append(previous)
            assert [e.hash for e in recorded] == expected
            assert [e.previous_hash for e in recorded] == [GENESIS, *expected[:2]]

            # An old process appends without a chain row; the next chained append chains it first.
            old.recorder.insert_events([StoredEvent(b, 3, "ugc.Order.Updated", b'{"v":3}')])
            stores.orders.recorder.insert_events([StoredEvent(a, 4, "ugc.Order.Updated", b'{"v":4}')])
            [b3] = stores.recorded_events("orders", b, gt=2)
            [a4] = stores.recorded_events("orders", a, gt=3)
            assert (b3.position, b3.recorded_at, a4.position) == (6, None, 7) and a4.recorded_at is not None
            assert a4.link == next_link(b3.link or b"", a4.hash or b"")
            assert verified(stores) == (7, [])

            # `ugc migrate` on an unchained log chains it all.
            old.recorder.insert_events([StoredEvent(b, 4, "ugc.Order.Updated", b'{"v":4}')])
            db = Database(url)
            migrate(db)
            db.close()
            head = stores.chain_head("orders")
            assert head is not None and head.position == 8
            assert verified(stores) == (8, [])
        finally:
            stores.close()
            old.close()


def test_two_processes_taking_turns_on_a_stream_chain_it_clean(backend: str, tmp_path: Path) -> None:
    """A store extends the hash it appended last on a stream without reading it back (PostgreSQL);
    once another process appended after it, or its own append clashed, it reads the stored one."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        one, other = EventStores(url, data_key=DATA_KEY), EventStores(url, data_key=DATA_KEY)
        try:
            stream = uuid4()

            def append(stores: EventStores, version: int) -> None:
                event = StoredEvent(stream, version, "ugc.Order.Updated", b'{"v":%d}' % version)
                stores.orders.recorder.insert_events([event])

            append(one, 1)
            append(one, 2)  # extends the hash it appended
            append(other, 3)
            with pytest.raises(IntegrityError):
                append(one, 3)  # a version behind: refused, and nothing of it is kept
            append(one, 4)  # extends the other's 3, not its own 2
            append(other, 5)
            append(other, 6)
            assert verified(one) == (6, [])
        finally:
            one.close()
            other.close()


def test_the_leaders_checkpoints_keep_their_pace_across_restarts(tmp_path: Path) -> None:
    heads = {"orders": ChainHead(7, bytes(range(32)), datetime(2026, 12, 3, tzinfo=UTC)), "files": None}
    directory = tmp_path / "audit"

    def job() -> PeriodicCheckpoints:
        return PeriodicCheckpoints(lambda: heads, directory, "k" * 40, 3600)

    first = job()
    first.run_once()
    first.run_once()
    job().run_once()  # a restart, or another leader, soon after
    [path] = directory.glob("checkpoint-*.json")
    document = json.loads(path.read_text())
    assert document["format"] == "ugc-audit-checkpoint/1"
    assert document["heads"] == {
        "orders": {"position": 7, "link": bytes(range(32)).hex(), "recorded_at": "2026-12-03T00:00:00.000000Z"},
        "files": {"position": 0, "link": "00" * 32, "recorded_at": None},
    }
    assert document["signature"] == signature(document, "k" * 40)
    assert not read_checkpoint(path, ("another key " * 4,)).signed
    hour_ago = time.time() - 3601
    os.utime(path, (hour_ago, hour_ago))
    job().run_once()
    assert len(list(directory.glob("checkpoint-*.json"))) == 2


def test_a_checkpoint_dated_ahead_by_a_fast_clock_delays_the_next_by_the_interval_alone(tmp_path: Path) -> None:
    """The pace follows the newest file's time: one written while the clock ran a day fast put the
    next checkpoint a day past its interval."""
    heads = {"orders": ChainHead(7, bytes(range(32)), datetime(2026, 12, 3, tzinfo=UTC))}
    directory = tmp_path / "audit"
    PeriodicCheckpoints(lambda: heads, directory, "k" * 40, 3600).run_once()
    [path] = directory.glob("checkpoint-*.json")
    day_ahead = time.time() + 86400
    os.utime(path, (day_ahead, day_ahead))
    job = PeriodicCheckpoints(lambda: heads, directory, "k" * 40, 0.5)
    job.run_once()
    time.sleep(0.6)
    job.run_once()
    assert len(list(directory.glob("checkpoint-*.json"))) == 2


def test_the_hash_covers_every_field_of_the_recipe() -> None:
    stream, moment = UUID(int=1), datetime(2026, 12, 3, 1, 2, 3, 4, tzinfo=UTC)
    canonical = canonical_bytes("orders", stream, 2, "ugc.Order.Placed", '{"цена":1}'.encode(), moment)
    assert (
        canonical
        == (
            '{"context":"orders","recorded_at":"2026-12-03T01:02:03.000004Z","state":"{\\"цена\\":1}",'
            '"stream":"00000000-0000-0000-0000-000000000001","topic":"ugc.Order.Placed","version":2}'
        ).encode()
    )
    others = {
        canonical_bytes("catalog", stream, 2, "ugc.Order.Placed", b"{}", moment),
        canonical_bytes("orders", UUID(int=2), 2, "ugc.Order.Placed", b"{}", moment),
        canonical_bytes("orders", stream, 3, "ugc.Order.Placed", b"{}", moment),
        canonical_bytes("orders", stream, 2, "ugc.Order.Updated", b"{}", moment),
        canonical_bytes("orders", stream, 2, "ugc.Order.Placed", b"{ }", moment),
        canonical_bytes("orders", stream, 2, "ugc.Order.Placed", b"{}", None),
        canonical_bytes("orders", stream, 2, "ugc.Order.Placed", b"{}", moment + timedelta(microseconds=1)),
    }
    assert len(others) == 7


def test_an_append_finds_the_hashes_it_extends_by_key_in_a_log_never_analyzed(backend: str, tmp_path: Path) -> None:
    """A follow-up event's append looks up its stream's last hash: one index lookup per stream, also
    where autovacuum never analyzed the log (planned as a join, it hash-joined over the whole chain:
    ~1,000 buffers and 26 ms under the log's table lock per append, after 80,000 events)."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's planner; SQLite looks the pairs up by its primary key")
    with fresh_database(backend, tmp_path, migrated=True) as url:
        stores = EventStores(url, data_key=DATA_KEY)
        try:
            recorder = stores[Orders.name].recorder
            assert isinstance(recorder, ChainedPostgresRecorder)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO orders_events (originator_id, originator_version, topic, state) "
                    "SELECT gen_random_uuid(), 1, 't', '\\x00' FROM generate_series(1, 50000)"
                )
                conn.execute(
                    "INSERT INTO orders_events_chain SELECT notification_id, originator_id, originator_version, "
                    "now(), '\\x01', '\\x02' FROM orders_events"
                )
                stream = conn.execute("SELECT originator_id FROM orders_events LIMIT 1").fetchone()
                assert stream is not None
                conn.execute("BEGIN")
                explained = conn.execute(
                    b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + recorder._previous_sql,
                    (json.dumps([[str(stream[0]), 1]]),),
                ).fetchone()
                assert explained is not None
                [[plan]] = explained
                conn.execute("ROLLBACK")
        finally:
            stores.close()
    assert plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"] < 50, plan


def test_a_whole_chain_is_told_without_waiting_for_the_logs_appends(backend: str, tmp_path: Path) -> None:
    """Every process's start asks each log for its backlog (`migrate`): with a whole chain it answers
    at once, even while an append holds the log's table lock (it used to wait for the lock, and
    appends queued behind it)."""
    if backend != "postgres":
        pytest.skip("SQLite has one write lock for everything: its migration waits for any writer anyway")
    with fresh_database(backend, tmp_path, migrated=True) as url:
        stores = EventStores(url, data_key=DATA_KEY)
        try:
            stream = uuid4()
            for version in (1, 2):  # chained as they are appended
                stores[Orders.name].recorder.insert_events([StoredEvent(stream, version, "ugc.Order.Updated", b"{}")])
            with psycopg.connect(url) as appending, ThreadPoolExecutor(1) as pool:
                appending.execute("LOCK TABLE orders_events IN EXCLUSIVE MODE")  # an append under way
                asked = pool.submit(stores.chained("orders").chain_backlog)
                assert asked.result(timeout=10) == 0
                appending.rollback()
        finally:
            stores.close()
