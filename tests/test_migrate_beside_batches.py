"""A process that starts (and migrates) beside running projectors does not wait for, or deadlock with,
their batches: on PostgreSQL an index that exists is not created again, so the migration takes no lock
on the read models' tables (CREATE INDEX IF NOT EXISTS locked each until it committed)."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from tests.backends import fresh_database, postgres_available
from ugc.platform.database import Database
from ugc.wiring import migrate

pytestmark = pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not a PostgreSQL URL")


def test_a_migration_beside_an_open_batch_finishes_without_waiting_for_it(tmp_path: Path) -> None:
    with fresh_database("postgres", tmp_path) as url:
        db = Database(url)
        try:
            migrate(db)
            with psycopg.connect(url) as batch:  # a batch under way: it wrote rows, it has not committed
                batch.execute(
                    "INSERT INTO listing_creator_ratings (creator_profile_id, rating_sum, rating_count) "
                    "VALUES (1, 5, 1)"
                )
                done = threading.Event()
                starting = threading.Thread(target=lambda: (migrate(db), done.set()), daemon=True)
                starting.start()
                assert done.wait(20), "the migration waited for the open batch"
                batch.rollback()
            starting.join(5)
        finally:
            db.close()
