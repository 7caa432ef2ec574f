"""Rows a projection holds back while it applies a batch, then writes with one statement per kind.

In a batch of placed orders every order would cost a statement per table; held, the batch costs
one. A projection must `write` what it holds before it reads or changes those tables itself, and
at the end of the batch (`Projection.before_commit`); `clear` when the batch is aborted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ugc.database import Cursor, chunks, values


class HeldInserts:
    """Rows for INSERT statements, grouped by statement, written in the order statements were first seen."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Sequence[Any]]] = {}

    def add(self, statement: str, row: Sequence[Any]) -> None:
        """Hold `row` for `statement`, an INSERT whose `{rows}` stands where the VALUES rows go."""
        self._rows.setdefault(statement, []).append(row)

    def write(self, cur: Cursor) -> None:
        held, self._rows = self._rows, {}
        for statement, rows in held.items():
            width = len(rows[0])
            for chunk in chunks(rows, width):
                cur.execute(statement.format(rows=values(len(chunk), width)), [v for row in chunk for v in row])

    def clear(self) -> None:
        self._rows.clear()
