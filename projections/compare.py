"""Are the live read tables what the log says? Replay every read model into a scratch set and compare
the tables row by row (for `ugc verify`).

1. One snapshot of the live side: the read models' positions and a copy of each of their tables,
   read in one transaction (REPEATABLE READ on PostgreSQL; one read transaction of the live file
   on SQLite) and copied into the scratch set (`<table>__live`). The transaction is as short as the
   copy: nothing of the live system waits for it, and no old snapshot is held while replaying.
2. The replay fills the scratch tables up to exactly those positions (projections/replay.py).
3. Each table is compared by primary key in SQL, both copies side by side: rows the live table
   lacks (missing), rows only it has (extra), and rows whose columns differ (each column with both
   values), at most `limit` of each kind per table.

An event the replay cannot decode or apply (an edited one, say) is told to `failed` and passed
over, so the rest is still compared (the rows that event made then differ too); a read model whose
replay stopped at a batch with no event to blame (told too) has its tables left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from projections.base import Projection
from projections.operations import events_after
from projections.replay import BATCH_SIZE, Failed, Positions, Replay
from projections.scratch import ScratchSet
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores

LIMIT = 20  # differences of each kind reported per table
LIVE_COPY = "{}__live"
Kind = Literal["missing", "extra", "differs", "more"]


@dataclass(frozen=True)
class ColumnDifference:
    column: str
    live: Any
    replayed: Any


@dataclass(frozen=True)
class ReadModelDifference:
    """One row where a live read table is not what replaying the log makes of it.

    `kind`: `missing` (the replay has the row, the live table not), `extra` (the other way),
    `differs` (both have it: `columns` says how), `more` (more rows of `table` differ than were
    reported: `count` of them past the limit, of the kind in `detail`).
    """

    projection: str
    table: str
    kind: Kind
    key: dict[str, Any]
    columns: tuple[ColumnDifference, ...] = ()
    detail: str = ""
    count: int = 0
    row: dict[str, Any] = field(default_factory=dict)  # the whole row of a missing or extra one

    def describe(self) -> str:
        where = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        if self.kind == "more":
            return f"{self.projection}: {self.table}: {self.count} more {self.detail} rows not listed"
        if self.kind == "differs":
            what = "; ".join(f"{c.column}: live {c.live!r}, replayed {c.replayed!r}" for c in self.columns)
            return f"{self.projection}: {self.table} ({where}) differs: {what}"
        return f"{self.projection}: {self.table} ({where}) is {self.kind} in the live table"


def compare_read_models(
    db: Database,
    stores: EventStores,
    projections: Sequence[Projection],
    progress: Callable[[int, int], object] | None = None,
    *,
    limit: int = LIMIT,
    batch_size: int = BATCH_SIZE,
    failed: Failed | None = None,
) -> list[ReadModelDifference]:
    """Every difference between the live tables of the read models among `projections` (fresh
    instances, as `all_projections(settings)` makes them; side effects are left out) and a replay
    of the log up to the positions the live tables stand at. `progress(done, total)` is told the
    events replayed so far of the total to replay; `failed`, what the replay could not apply
    (without it, the first such error is raised)."""
    read_models = [p for p in projections if p.read_model]
    tables = {table: p.name for p in read_models for table in p.tables}
    with ScratchSet.made(db, list(tables)) as scratch:
        positions = _snapshot(scratch, read_models)
        total = sum(_events_up_to(stores, app, position) for (_, app), position in positions.items())
        done = [0]

        def advanced(events: int) -> None:
            done[0] += events
            if progress is not None:
                progress(done[0], max(total, done[0]))

        replay = Replay(scratch, stores, read_models, batch_size=batch_size, advanced=advanced, failed=failed)
        replay.run_to(positions)
        if progress is not None:
            progress(done[0], max(total, done[0]))
        differences: list[ReadModelDifference] = []
        with scratch.transaction(write=False) as cur:
            for table, projection in tables.items():
                if projection not in replay.stopped:
                    differences += _compare(cur, scratch, projection, table, limit)
        return differences


def _snapshot(scratch: ScratchSet, projections: Sequence[Projection]) -> Positions:
    """The live positions of `projections` and a copy of their tables, from one snapshot."""
    names = [p.name for p in projections]
    marks = ", ".join(["%s"] * len(names))
    if scratch.db.dialect == "postgresql":
        transaction = scratch.db.transaction(write=True)
    else:
        transaction = scratch.transaction(write=False)  # writes the scratch file only: no live write lock
    with transaction as cur:
        if cur.dialect == "postgresql":
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows = cur.execute(
            f"SELECT projection, application, position FROM {scratch.live}.projection_tracking "
            f"WHERE projection IN ({marks})",
            names,
        ).fetchall()
        for table in scratch.tables:
            copy = f"{scratch.scratch}.{_quote(LIVE_COPY.format(table))}"
            if cur.dialect == "postgresql":
                cur.execute(f"CREATE TABLE {copy} AS SELECT * FROM {scratch.live}.{_quote(table)}")
            else:
                # Made with the live table's own declaration, so its values read back typed alike.
                found = cur.execute(
                    "SELECT sql FROM live.sqlite_master WHERE type = 'table' AND name = %s", (table,)
                ).fetchone()
                assert found is not None, f"no live table {table}"
                cur.execute(_renamed(found["sql"], table, LIVE_COPY.format(table)))
                cur.execute(f"INSERT INTO {copy} SELECT * FROM live.{_quote(table)}")
    found_positions = {(row["projection"], row["application"]): int(row["position"]) for row in rows}
    return {(p.name, app): found_positions.get((p.name, app), 0) for p in projections for app in p.applications}


def _renamed(create: str, old: str, new: str) -> str:
    """`create` (a CREATE TABLE as SQLite stores it: `CREATE TABLE <name> ...`) for a table named `new`."""
    head = "CREATE TABLE "
    rest = create[len(head) :].lstrip()
    for spelling in (old, _quote(old), f"`{old}`", f"[{old}]"):
        if create.startswith(head) and rest.startswith(spelling):
            return f"{head}main.{_quote(new)}{rest[len(spelling) :]}"
    raise ValueError(f"unexpected declaration of {old}: {create[:80]!r}")


def _compare(cur: Cursor, scratch: ScratchSet, projection: str, table: str, limit: int) -> list[ReadModelDifference]:
    replayed = f"{scratch.scratch}.{_quote(table)}"
    live = f"{scratch.scratch}.{_quote(LIVE_COPY.format(table))}"
    live_columns = set(scratch.columns(cur, scratch.scratch, LIVE_COPY.format(table)))
    # Columns the live table has beyond the declaration (left by older code) are no read model's.
    columns = [c for c in scratch.columns(cur, scratch.scratch, table) if c in live_columns]
    key = scratch.primary_key(cur, table) or columns
    on = " AND ".join(f"l.{_quote(k)} = r.{_quote(k)}" for k in key)
    distinct = "IS DISTINCT FROM" if cur.dialect == "postgresql" else "IS NOT"
    found: list[ReadModelDifference] = []
    listed = ", ".join(_quote(c) for c in columns)
    sides: tuple[tuple[Kind, str, str], ...] = (("missing", replayed, live), ("extra", live, replayed))
    for kind, present, absent in sides:
        rows = cur.execute(
            f"SELECT {listed} FROM {present} AS r WHERE NOT EXISTS (SELECT 1 FROM {absent} AS l WHERE {on}) "
            f"ORDER BY {', '.join(_quote(k) for k in key)} LIMIT %s",
            (limit + 1,),
        ).fetchall()
        found += [
            ReadModelDifference(projection, table, kind, {k: row[k] for k in key}, row=row) for row in rows[:limit]
        ]
        found += _more(
            cur,
            projection,
            table,
            kind,
            len(rows),
            limit,
            f"{present} AS r",
            f"NOT EXISTS (SELECT 1 FROM {absent} AS l WHERE {on})",
        )
    compared = [c for c in columns if c not in key]
    if compared:
        differ = " OR ".join(f"l.{_quote(c)} {distinct} r.{_quote(c)}" for c in compared)
        pairs = ", ".join(f"l.{_quote(c)} AS {_quote('l_' + c)}, r.{_quote(c)} AS {_quote('r_' + c)}" for c in compared)
        keys = ", ".join(f"l.{_quote(k)} AS {_quote(k)}" for k in key)
        rows = cur.execute(
            f"SELECT {keys}, {pairs} FROM {live} AS l JOIN {replayed} AS r ON {on} WHERE {differ} "
            f"ORDER BY {', '.join('l.' + _quote(k) for k in key)} LIMIT %s",
            (limit + 1,),
        ).fetchall()
        for row in rows[:limit]:
            changed = tuple(
                ColumnDifference(c, row["l_" + c], row["r_" + c]) for c in compared if row["l_" + c] != row["r_" + c]
            )
            found.append(ReadModelDifference(projection, table, "differs", {k: row[k] for k in key}, columns=changed))
        found += _more(
            cur, projection, table, "differs", len(rows), limit, f"{live} AS l JOIN {replayed} AS r ON {on}", differ
        )
    return found


def _more(
    cur: Cursor, projection: str, table: str, kind: str, listed: int, limit: int, source: str, condition: str
) -> list[ReadModelDifference]:
    """One `more` difference with the count of rows of `kind` past `limit`, when there are any."""
    if listed <= limit:
        return []
    row = cur.execute(f"SELECT COUNT(*) AS n FROM {source} WHERE {condition}").fetchone()
    assert row is not None
    return [ReadModelDifference(projection, table, "more", {}, detail=kind, count=int(row["n"]) - limit)]


def _events_up_to(stores: EventStores, application: str, position: int) -> int:
    """How many events `application`'s log holds up to `position` (for the progress total)."""
    return max(0, events_after(stores, application, 0) - events_after(stores, application, position))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
