"""SQLite's write-ahead log goes back to a bounded size after a large transaction, while the process
keeps its connections open (`SQLITE_WAL_KEPT_BYTES`, ugc/platform/sqlite_pragmas.py): the read
side's file and the event stores'."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from tests.backends import DATA_KEY
from ugc.config import sqlite_path
from ugc.platform.database import Database
from ugc.platform.sqlite_pragmas import SQLITE_WAL_KEPT_BYTES
from ugc.platform.store import EventStores, eventsourcing_settings


def test_the_wal_shrinks_after_a_transaction_larger_than_what_it_keeps(db: Database) -> None:
    """Before, it stayed at its largest (here ~20 MB) until every connection to the file closed."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL recycles its WAL segments itself (max_wal_size)")
    wal = f"{sqlite_path(db.url)}-wal"
    with db.transaction(write=True) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS wal_filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    with db.transaction(write=True) as cur:
        for _ in range(SQLITE_WAL_KEPT_BYTES // 1000 + 4000):
            cur.execute("INSERT INTO wal_filler (body) VALUES (%s)", ("x" * 1000,))
    assert os.path.getsize(wal) > SQLITE_WAL_KEPT_BYTES
    try:
        for n in range(20):  # the commits' checkpoints empty the log, and the next write restarts it
            with db.transaction(write=True) as cur:
                cur.execute("UPDATE wal_filler SET body = %s WHERE id = 1", (str(n),))
        assert os.path.getsize(wal) <= SQLITE_WAL_KEPT_BYTES
    finally:
        with db.transaction(write=True) as cur:
            cur.execute("DROP TABLE wal_filler")


def test_an_event_stores_wal_shrinks_after_appends_beside_a_long_read(tmp_path: Path) -> None:
    """A replay, `ugc verify` or a backup reads an event store in one long transaction: no checkpoint
    can pass its snapshot, so the appends beside it grow the store's `-wal`. Once the read ends, the
    next append's checkpoint empties the log and the write after it truncates the file back to
    SQLITE_WAL_KEPT_BYTES. Before, the library's connections kept SQLite's default (no limit): the
    file stayed at its peak (here 32 MiB and more) until the last process closed it."""
    url = f"sqlite:///{tmp_path / 'ugc.sqlite3'}"
    stores = EventStores(url, create_table=True, data_key=DATA_KEY)
    recorder = stores.orders.recorder
    assert isinstance(recorder, SQLiteApplicationRecorder)
    wal = Path(eventsourcing_settings(url, "orders", create_table=False)["SQLITE_DBNAME"] + "-wal")
    try:
        with recorder.datastore.transaction(commit=False) as reading:  # as `ugc verify`'s replay holds it
            reading.execute("SELECT count(*) FROM stored_events")
            reading.fetchone()
            while os.path.getsize(wal) <= 2 * SQLITE_WAL_KEPT_BYTES:
                recorder.insert_events([_filler(uuid4()) for _ in range(50)])
        for _ in range(3):  # the first commit's checkpoint empties the log, the next write restarts it
            recorder.insert_events([_filler(uuid4())])
        assert os.path.getsize(wal) <= SQLITE_WAL_KEPT_BYTES
    finally:
        stores.close()


def _filler(stream: UUID) -> StoredEvent:
    return StoredEvent(stream, 1, "ugc.orders:Order.Updated", b'{"requirements":"%s"}' % (b"x" * 1000))
