"""Rows a projection writes together (projections/held.py): what the writes leave, on both backends,
and on PostgreSQL in one statement, whose parts read the tables as they were before any of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from projections.held import HeldInserts, Insert, OverRows, write_together
from ugc.platform.database import Database

TOTALS = OverRows(
    {"name": "text", "n": "bigint"},
    "INSERT INTO held_totals (name, n) SELECT name, n FROM totals AS held WHERE true "
    "ON CONFLICT (name) DO UPDATE SET n = held_totals.n + excluded.n",
    "totals",
)
# Reads `held_totals`, which TOTALS writes: as stored before both of them, whichever runs first.
SEEN = OverRows(
    {"name": "text"},
    "UPDATE held_seen SET n = (SELECT COALESCE(SUM(n), 0) FROM held_totals) FROM seen AS held "
    "WHERE held_seen.name = held.name",
    "seen",
)
ONE = Insert("held_one", {"k": "bigint"})
OTHER = Insert("held_other", {"k": "bigint"}, "ON CONFLICT (k) DO NOTHING")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    with database.transaction(write=True) as cur:
        for table, columns in [
            ("held_totals", "name TEXT PRIMARY KEY, n BIGINT NOT NULL"),
            ("held_seen", "name TEXT PRIMARY KEY, n BIGINT NOT NULL"),
            ("held_one", "k BIGINT NOT NULL"),
            ("held_other", "k BIGINT PRIMARY KEY"),
        ]:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} ({columns})")
        cur.execute("INSERT INTO held_totals (name, n) VALUES ('a', 1)")
        cur.execute("INSERT INTO held_seen (name, n) VALUES ('x', -1), ('y', -1)")
    try:
        yield database
    finally:
        database.close()


def rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    with db.read() as cur:
        return [tuple(row.values()) for row in cur.execute(sql).fetchall()]


def test_each_write_leaves_its_rows_and_reads_the_tables_as_before_all_of_them(
    db: Database, backend: str, statements: list[str]
) -> None:
    with db.transaction(write=True) as cur:
        write_together(cur, [(TOTALS, [("a", 2), ("b", 5)]), (SEEN, [("x",)]), (ONE.over_rows, [])])
    # One statement on PostgreSQL; one for each write that has rows elsewhere.
    assert len(statements) == (1 if backend == "postgres" else 2)
    assert rows(db, "SELECT name, n FROM held_totals ORDER BY name") == [("a", 3), ("b", 5)]
    # On PostgreSQL SEEN reads the totals as they were before TOTALS (1), elsewhere after it (8): why
    # writes that go together must not read what another of them writes.
    expected_seen = 1 if backend == "postgres" else 8
    assert rows(db, "SELECT name, n FROM held_seen ORDER BY name") == [("x", expected_seen), ("y", -1)]


def test_a_lone_write_is_its_own_statement_and_no_rows_write_nothing(db: Database, statements: list[str]) -> None:
    with db.transaction(write=True) as cur:
        write_together(cur, [(TOTALS, []), (SEEN, [])])
        assert statements == []
        write_together(cur, [(TOTALS, [("c", 4)]), (SEEN, [])])
    assert len(statements) == 1 and "held_seen" not in statements[0]
    assert rows(db, "SELECT name, n FROM held_totals ORDER BY name") == [("a", 1), ("c", 4)]


def test_held_inserts_go_into_their_tables_together(db: Database, backend: str, statements: list[str]) -> None:
    held = HeldInserts()
    for k in (3, 1, 3):
        held.add(ONE, (k,))
        held.add(OTHER, (k,))
    with db.transaction(write=True) as cur:
        held.write(cur)
        held.write(cur)  # written once: nothing is held any more
    assert len(statements) == (1 if backend == "postgres" else 2)
    assert rows(db, "SELECT k FROM held_one ORDER BY k") == [(1,), (3,), (3,)]
    assert rows(db, "SELECT k FROM held_other ORDER BY k") == [(1,), (3,)]
