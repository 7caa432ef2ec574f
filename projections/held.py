"""Rows a projection holds back while it applies a batch, then writes with one statement per table.

In a batch of placed orders every order would cost a statement per table; held, the batch costs
one. A projection must `write` what it holds before it reads or changes those tables itself, and
at the end of the batch (`Projection.before_commit`); `clear` when the batch is aborted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ugc.platform.dialect import Cursor


@dataclass(frozen=True)
class OverRows:
    """One statement `sql` over a batch's rows of `columns` (name -> PostgreSQL type), which it reads
    as the table `held`: an INSERT … SELECT, an UPDATE … FROM, whatever one statement does with them.

    Written once per batch whatever the number of rows (on SQLite once per run of rows that fits
    a statement's parameters), and not at all without rows.
    """

    columns: Mapping[str, str]
    sql: str

    def write(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        for entry, params in cur.rows("held", self.columns, rows):
            cur.execute(f"WITH {entry} {self.sql}", params)


@dataclass(frozen=True, eq=False)  # one constant per kind of insert: the same by identity
class Insert:
    """Rows of `columns` (name -> PostgreSQL type) into `table`, with an optional ON CONFLICT clause."""

    table: str
    columns: Mapping[str, str]
    on_conflict: str = ""

    def write(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> None:
        names = ", ".join(self.columns)
        # WHERE true: SQLite would read the ON of ON CONFLICT as a join's otherwise.
        OverRows(
            self.columns, f"INSERT INTO {self.table} ({names}) SELECT {names} FROM held WHERE true {self.on_conflict}"
        ).write(cur, rows)


class HeldInserts:
    """Rows held for their inserts, written in the order the inserts were first given."""

    def __init__(self) -> None:
        self._rows: dict[Insert, list[Sequence[Any]]] = {}

    def add(self, insert: Insert, row: Sequence[Any]) -> None:
        self._rows.setdefault(insert, []).append(row)

    def write(self, cur: Cursor) -> None:
        held, self._rows = self._rows, {}
        for insert, rows in held.items():
            insert.write(cur, rows)

    def clear(self) -> None:
        self._rows.clear()
