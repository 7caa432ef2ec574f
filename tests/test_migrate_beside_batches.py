"""A process that starts (and migrates) beside running ones does not wait for, or deadlock with, their
batches and appends: on PostgreSQL an index that exists is not created again, so the migration takes
no lock on the read models' tables, the logs or the data keys (CREATE INDEX IF NOT EXISTS locked each
until it committed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.backends import fresh_database, postgres_available
from ugc.platform.database import Database
from ugc.wiring import migrate

pytestmark = pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not a PostgreSQL URL")


def migrates_beside(url: str, hold: Callable[[psycopg.Connection[Any]], None], what: str) -> None:
    """Migrate a migrated database while another session holds what `hold` takes (uncommitted):
    the migration must end without waiting for that session to."""
    db = Database(url)
    try:
        migrate(db)
        with psycopg.connect(url) as other:
            hold(other)
            done = threading.Event()

            def start() -> None:
                migrate(db)
                done.set()

            starting = threading.Thread(target=start, daemon=True)
            starting.start()
            assert done.wait(20), f"the migration waited for {what}"
            other.rollback()
        starting.join(5)
    finally:
        db.close()


def test_a_migration_beside_an_open_batch_finishes_without_waiting_for_it(tmp_path: Path) -> None:
    def batch(conn: psycopg.Connection[Any]) -> None:  # a batch under way: it wrote rows, it has not committed
        conn.execute(
            "INSERT INTO listing_creator_ratings (creator_profile_id, rating_sum, rating_count) VALUES (1, 5, 1)"
        )

    with fresh_database("postgres", tmp_path) as url:
        migrates_beside(url, batch, "the open batch")


def test_a_migration_beside_appends_under_way_finishes_without_waiting_for_them(tmp_path: Path) -> None:
    """Every log's append holds its events table (EXCLUSIVE, the library's lock) and a registration
    its data key's row: the start of another process, a worker restarted, must not queue behind them
    (and every append after them behind it)."""

    def appends(conn: psycopg.Connection[Any]) -> None:
        logs = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND to_regclass(tablename || '_chain') IS NOT NULL"  # a log: its chain beside it
            )
        ]
        assert len(logs) == 5, logs  # accounts, catalog, files, orders, messaging
        for table in logs:
            conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        conn.execute("LOCK TABLE accounts_data_keys IN ROW EXCLUSIVE MODE")

    with fresh_database("postgres", tmp_path) as url:
        migrates_beside(url, appends, "the appends under way")
