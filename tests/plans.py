"""What a read statement's plan touches, on either backend: tests of costs check plans, not times."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import ClientCursor

from tests.backends import fresh_database
from ugc.platform.database import Database
from ugc.platform.dialect import postgres_params


def relations_read(db: Database, sql: str, params: Sequence[object]) -> set[str]:
    """The tables a statement's plan reads (PostgreSQL's EXPLAIN; SQLite's EXPLAIN QUERY PLAN, whose
    lines name a table, or its index, after SCAN or SEARCH)."""
    with db.read() as cur:
        if db.dialect == "sqlite":
            lines = cur.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            return {line["detail"].split()[1] for line in lines if line["detail"].startswith(("SCAN", "SEARCH"))}
        plan = cur.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
    assert plan is not None
    return {node["Relation Name"] for node in _nodes(next(iter(plan.values()))[0]["Plan"]) if "Relation Name" in node}


Statement = tuple[str, Sequence[object]]


@contextmanager
def stored_by_hand(backend: str, directory: Path, *statements: Statement) -> Iterator[Database]:
    """A fresh migrated database, open, whose rows `statements` stored in one transaction, analysed
    (`ANALYZE`) so that plans see them: tests of a read's cost store its rows by hand, as the read is
    what they test. The url is the database's `url`."""
    with fresh_database(backend, directory, migrated=True) as url:
        db = Database(url)
        try:
            with db.transaction(write=True) as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
                cur.execute("ANALYZE")
            yield db
        finally:
            db.close()


def work(url: str, statements: Sequence[Statement], relation: str) -> int:
    """What statements make the database do, run one after the other on one connection: on
    PostgreSQL the rows of `relation` their plans' nodes passed, kept or filtered out (`EXPLAIN
    ANALYZE`); on SQLite the hundreds of virtual machine instructions they ran."""
    if url.startswith("sqlite:///"):
        hundreds = 0

        def count() -> int:
            nonlocal hundreds
            hundreds += 1
            return 0

        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as raw:
            raw.set_progress_handler(count, 100)
            for sql, params in statements:
                raw.execute(sql.replace("%s", "?"), params).fetchall()
        return hundreds
    passed = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for sql, params in statements:
            bound = ClientCursor(conn).mogrify(sql, postgres_params(params))
            found = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {bound}").fetchone()
            assert found is not None
            passed += sum(
                int(node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0))
                for node in _nodes(found[0][0]["Plan"])
                if node.get("Relation Name") == relation
            )
    return passed


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan's node and every node under it."""
    return [node, *(found for child in node.get("Plans", []) for found in _nodes(child))]
