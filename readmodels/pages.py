"""One page of a list query: the rows asked for and how many there are in all."""

from __future__ import annotations

from dataclasses import dataclass

from ugc.database import Row


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
