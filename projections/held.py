"""Rows a projection holds back while it applies a batch, then writes with one statement per table,
or, on PostgreSQL, with one statement for several tables (`write_together`).

In a batch of placed orders every order would cost a statement per table; held, the batch costs
one. A projection must `write` what it holds before it reads or changes those tables itself, and
hand the rest over at the end of the batch (`Projection.held_writes`, which `end_batch` writes);
`clear` when the batch is aborted.

Each statement of a batch costs the projection process and PostgreSQL the same few tens of
microseconds whatever its rows, so a batch mixing several kinds of event (a lifecycle's placings,
deliveries and reviews) paid for one statement per kind where a batch of one kind paid for one
(issue 15); written together, the kinds share one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ugc.platform.dialect import Cursor


@dataclass(frozen=True)
class OverRows:
    """One statement `sql` over a batch's rows of `columns` (name -> PostgreSQL type), which it reads
    as the table `name`: an INSERT … SELECT, an UPDATE … FROM, whatever one statement does with them.

    Written once per batch whatever the number of rows (on SQLite once per run of rows that fits
    a statement's parameters), and not at all without rows.
    """

    columns: Mapping[str, str]
    sql: str
    name: str = "held"  # what `sql` calls the rows: distinct among statements written together

    def write(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        for entry, params in cur.rows(self.name, self.columns, rows):
            cur.execute(f"WITH {entry} {self.sql}", params)


Writes = Sequence[tuple[OverRows, Sequence[Sequence[Any]]]]  # statements over rows, written together


def write_together(cur: Cursor, writes: Writes) -> None:
    """Each `OverRows` of `writes` over its rows (none without rows), as statements that read nothing
    another of them writes and write rows no other of them writes.

    On PostgreSQL in one statement, each a data-modifying WITH of it: they all see the tables as
    they were before any of them, which is what one after the other sees when none reads another's
    rows. Elsewhere (SQLite has no data-modifying WITH) one after the other, in the order given.
    """
    given = [(over_rows, rows) for over_rows, rows in writes if rows]
    if cur.dialect != "postgresql" or len(given) < 2:
        for over_rows, rows in given:
            over_rows.write(cur, rows)
        return
    names = [over_rows.name for over_rows, _ in given]
    assert len(set(names)) == len(names), f"rows written together need names of their own: {names}"
    entries: list[str] = []
    params: list[Any] = []
    for over_rows, rows in given:
        [(entry, entry_params)] = cur.rows(over_rows.name, over_rows.columns, rows)  # one entry on PostgreSQL
        entries.append(entry)
        params += entry_params
    written = [f"written_{index} AS ({over_rows.sql})" for index, (over_rows, _) in enumerate(given)]
    cur.execute(f"WITH {', '.join([*entries, *written])} SELECT 1", params)


@dataclass(frozen=True, eq=False)  # one constant per kind of insert: the same by identity
class Insert:
    """Rows of `columns` (name -> PostgreSQL type) into `table`, with an optional ON CONFLICT clause."""

    table: str
    columns: Mapping[str, str]
    on_conflict: str = ""

    def write(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> None:
        self.over_rows.write(cur, rows)

    @cached_property
    def over_rows(self) -> OverRows:
        """The insert as one statement over its rows, which it calls `new_<table>`."""
        names = ", ".join(self.columns)
        held = f"new_{self.table}"
        # WHERE true: SQLite would read the ON of ON CONFLICT as a join's otherwise.
        return OverRows(
            self.columns,
            f"INSERT INTO {self.table} ({names}) SELECT {names} FROM {held} WHERE true {self.on_conflict}",
            held,
        )


class HeldInserts:
    """Rows held for their inserts, written in the order the inserts were first given."""

    def __init__(self) -> None:
        self._rows: dict[Insert, list[Sequence[Any]]] = {}

    def add(self, insert: Insert, row: Sequence[Any]) -> None:
        self._rows.setdefault(insert, []).append(row)

    def write(self, cur: Cursor) -> None:
        """Every insert's rows: on PostgreSQL in one statement (`write_together`; each into a table of its own)."""
        write_together(cur, self.taken())

    def taken(self) -> list[tuple[OverRows, Sequence[Sequence[Any]]]]:
        """Every insert with its rows, to be written together; none is held any more."""
        held, self._rows = self._rows, {}
        return [(insert.over_rows, rows) for insert, rows in held.items()]

    def clear(self) -> None:
        self._rows.clear()
