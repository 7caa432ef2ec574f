"""The code version each read-model projection's live tables were built with (`projection_versions`).

A projection whose code changes what it writes declares a new `version`; a runner that starts with
a declared version other than the stored one rebuilds that projection blue/green
(`projections/bluegreen.py`), whose switch stores the new version in the same transaction as the
new tables.
"""

from __future__ import annotations

from collections.abc import Mapping

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor

DDL = (
    """CREATE TABLE IF NOT EXISTS projection_versions (
        projection TEXT PRIMARY KEY,
        version BIGINT NOT NULL)""",
)


def stored(db: Database) -> dict[str, int]:
    with db.read() as cur:
        rows = cur.execute("SELECT projection, version FROM projection_versions").fetchall()
    return {row["projection"]: int(row["version"]) for row in rows}


def adopt(cur: Cursor, declared: Mapping[str, int]) -> None:
    """Record the declared version of each projection that has none stored: its tables are taken as
    built by this code (a database older than versions, or a projection new to it)."""
    for projection, version in declared.items():
        cur.execute(
            "INSERT INTO projection_versions (projection, version) VALUES (%s, %s) ON CONFLICT (projection) DO NOTHING",
            (projection, version),
        )


def record(cur: Cursor, projection: str, version: int, *, schema: str = "") -> None:
    """Store `version` for `projection` (`schema`: the qualifier of the live tables, for a cursor
    whose unqualified names reach a scratch set)."""
    table = f"{schema}.projection_versions" if schema else "projection_versions"
    cur.execute(
        f"INSERT INTO {table} (projection, version) VALUES (%s, %s) "
        "ON CONFLICT (projection) DO UPDATE SET version = excluded.version",
        (projection, version),
    )


def at_most(cur: Cursor, projection: str, version: int) -> None:
    """Take `projection`'s tables as built by `version` unless stored as built by an earlier one: they
    lack what later versions write (a table made empty)."""
    cur.execute(
        "INSERT INTO projection_versions (projection, version) VALUES (%s, %s) "
        "ON CONFLICT (projection) DO UPDATE SET version = CASE WHEN projection_versions.version > excluded.version "
        "THEN excluded.version ELSE projection_versions.version END",
        (projection, version),
    )
