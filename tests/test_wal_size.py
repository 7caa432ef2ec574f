"""SQLite's write-ahead log goes back to a bounded size after a large transaction, while the process
keeps its connections open (ugc/platform/database.py, `SQLITE_WAL_KEPT_BYTES`)."""

from __future__ import annotations

import os

import pytest

from ugc.config import sqlite_path
from ugc.platform.database import SQLITE_WAL_KEPT_BYTES, Database


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
