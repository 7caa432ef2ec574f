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


@dataclass(frozen=True, eq=False)  # one constant per kind of insert: the same by identity
class Insert:
    """Rows of `columns` (name -> PostgreSQL type) into `table`, with an optional ON CONFLICT clause."""

    table: str
    columns: Mapping[str, str]
    on_conflict: str = ""

    def write(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> None:
        names = ", ".join(self.columns)
        for entry, params in cur.rows("held", self.columns, rows):
            # WHERE true: SQLite would read the ON of ON CONFLICT as a join's otherwise.
            cur.execute(
                f"WITH {entry} INSERT INTO {self.table} ({names}) "
                f"SELECT {names} FROM held WHERE true {self.on_conflict}",
                params,
            )


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
