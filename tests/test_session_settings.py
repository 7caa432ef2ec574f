"""Sessions of ours on PostgreSQL run without JIT, whatever a statement's estimated cost, and the
event stores' sessions plan a prepared statement once, whatever its parameters.

JIT compiles a plan at every execution once its estimate passes `jit_above_cost`, and the estimates
of our keyed statements grow with a table never analyzed: a group's load of its orders' streams
took 4-9 ms instead of 0.15 after ~60,000 events (ugc/platform/database.py, `NO_JIT`). Here the
threshold is lowered to 0, so that any plan would be compiled if JIT were on.

Left to choose, PostgreSQL planned a group's numbers statement again at every execution, since its
plan for the given counts looked cheaper than the one for any counts (`STORE_OPTIONS`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import DATA_KEY, fresh_database, postgres_available
from ugc.platform.database import Database
from ugc.platform.store import EventStores

pytestmark = pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to PostgreSQL")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database("postgres", tmp_path_factory.mktemp("jit"), migrated=True) as made:
        yield made


def compiled(plan: Any) -> bool:
    """Whether an `EXPLAIN (ANALYZE, FORMAT JSON)` answer says the plan was JIT-compiled."""
    return "JIT" in plan[0]


def test_the_read_sides_connections_run_without_jit(url: str) -> None:
    db = Database(url)
    try:
        with db.read() as cur:
            cur.execute("SET jit_above_cost = 0")
            cur.execute("SHOW jit")
            assert cur.fetchone() == {"jit": "off"}
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM generate_series(1, 1000) AS n")
            row = cur.fetchone()
            assert row is not None and not compiled(row["QUERY PLAN"])
    finally:
        db.close()


def test_every_event_stores_connections_load_streams_without_jit(url: str) -> None:
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        for name, app in stores.applications.items():
            recorder: Any = app.recorder
            with recorder.datastore.get_connection() as conn:
                assert conn.execute("SHOW jit").fetchone() == {"jit": "off"}, name
                conn.execute("SET jit_above_cost = 0")
                streams = json.dumps([[str(uuid.uuid4()), 0]])
                row = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + recorder._streams_sql, (streams,)).fetchone()
                assert row is not None and not compiled(row["QUERY PLAN"]), name
    finally:
        stores.close()


def test_every_event_stores_connections_plan_the_numbers_statement_once(url: str) -> None:
    """The statement that takes a group's numbers runs on a store's connection (GroupCommit reads it
    with the group's streams): its plan is the one for any counts, made once, not one per execution."""
    stores, db = EventStores(url, data_key=DATA_KEY), Database(url)
    try:
        query = db.numbers_query({"order": 3, "delivery": 2}, stores.heads_columns(["accounts", "catalog"]) or "")
        assert query is not None
        sql, params = query
        counts = ", ".join(str(count) for count in params)
        for name, app in stores.applications.items():
            with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
                assert conn.execute("SHOW plan_cache_mode").fetchone() == {"plan_cache_mode": "force_generic_plan"}
                conn.execute(f"PREPARE numbers (int, int) AS {sql.replace('%s', '$1', 1).replace('%s', '$2', 1)}")
                for _ in range(6):  # past the five custom plans PostgreSQL makes before it may choose
                    conn.execute(f"EXECUTE numbers ({counts})")
                row = conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE numbers ({counts})").fetchone()
                conn.execute("DEALLOCATE numbers")
                assert row is not None
                plans = json.dumps(row["QUERY PLAN"])
                # Planned without the counts: generate_series(1, $1) estimated at its default 1,000 rows.
                assert '"Plan Rows": 1000' in plans and '"Plan Rows": 3,' not in plans, name
    finally:
        stores.close()
        db.close()


def test_a_store_made_before_its_first_connection_keeps_the_setting(tmp_path: Path) -> None:
    """The stores' pools connect lazily, some during the library's constructor: every one is made with the option."""
    with fresh_database("postgres", tmp_path) as fresh:
        stores = EventStores(fresh, create_table=True, data_key=DATA_KEY)
        try:
            for app in stores.applications.values():
                with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
                    assert conn.execute("SHOW jit").fetchone() == {"jit": "off"}
        finally:
            stores.close()
