"""One page of a list query: the rows asked for and how many there are in all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ugc.database import Database, Row

# SQL with `%s` placeholders and its parameters.
Query = tuple[str, Sequence[object]]


@dataclass(frozen=True)
class PageRequest:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    count: int


def read_page(db: Database, page: PageRequest, count: Query, rows: Query) -> Page:
    """A page and its total from one snapshot.

    `count` selects one or more rows of `n` (summed: one per UNION ALL branch); `rows` is the
    ordered SELECT to which LIMIT and OFFSET are added.
    """
    with db.transaction() as cur:
        total = sum(int(row["n"]) for row in cur.execute(*count).fetchall())
        found = cur.execute(f"{rows[0]} LIMIT %s OFFSET %s", [*rows[1], page.size, page.offset]).fetchall()
    return Page(rows=found, count=total)
