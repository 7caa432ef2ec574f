"""One page of a list query: the rows asked for and how many there are in all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ugc.platform.database import Database
from ugc.platform.dialect import Row

# SQL with `%s` placeholders and its parameters.
Query = tuple[str, Sequence[object]]

REPLAY_CHUNK = 500  # rows a socket reads again at a time, when pushes may have been lost (api/routes/ws.py)


@dataclass(frozen=True)
class PageRequest:
    """Page `number` of `size` rows; with `max_depth`, only pages starting within that many rows exist."""

    number: int
    size: int
    max_depth: int | None = None

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def reachable(self) -> bool:
        return self.max_depth is None or self.offset < self.max_depth

    @property
    def next(self) -> PageRequest:
        return PageRequest(number=self.number + 1, size=self.size, max_depth=self.max_depth)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    count: int


@dataclass(frozen=True)
class PageQuery:
    """What a list function asks for: one page, and the statements that count and select it.

    `count` selects one or more rows of `n` (summed: one per UNION ALL branch); `rows` is the
    ordered SELECT to which LIMIT and OFFSET are added. Both are read from one snapshot, by
    `read_page` in a thread or `read_page_async` on the event loop. With `stops_at_count` (for an
    exact count) the rows' LIMIT is what the count leaves of the page: a scan that filters its
    index's entries stops at the last row there is instead of reading on to the end of the range.
    """

    page: PageRequest
    count: Query
    rows: Query
    stops_at_count: bool = False

    @property
    def statements(self) -> tuple[Query, Query]:
        return self.count, self._paged(self.rows)

    def _paged(self, rows: Query) -> Query:
        """`rows` with this page's LIMIT and OFFSET."""
        sql, params = rows
        size, offset = self.page.size, self.page.offset
        limit: Query = ("%s", [size])
        if self.stops_at_count:
            counted, counted_params = self.count
            left = f"(SELECT COALESCE(SUM(n), 0) - %s AS left_n FROM ({counted}) AS counted)"
            limit = (
                f"(SELECT CASE WHEN left_n > %s THEN %s WHEN left_n > 0 THEN left_n ELSE 0 END FROM {left} AS l)",
                [size, size, offset, *counted_params],
            )
        return f"{sql} LIMIT {limit[0]} OFFSET %s", [*params, *limit[1], offset]

    def result(self, counted: list[Row], found: list[Row]) -> Page:
        return Page(rows=found, count=sum(int(row["n"]) for row in counted))


def read_page(db: Database, query: PageQuery) -> Page:
    return query.result(*db.snapshot(*query.statements))


async def read_page_async(db: Database, query: PageQuery) -> Page:
    return query.result(*await db.snapshot_async(*query.statements))
