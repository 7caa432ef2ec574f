"""Aggregates that a command reads but never changes, kept while their log stands still.

Placing an order reads the buyer and the service. The library's cache would fast-forward each one
with a query of its own and deep-copy it (two thirds of placing's CPU, bench/RESULTS.md). Here one
query reads the heads of the logs involved (for placing, once per group of orders, together with
their numbers); an aggregate loaded when its log's head was the same is still current, since
nothing at all was appended there since. Only when a log moved on is the aggregate loaded again,
through the library (fast-forwarded, a copy of our own from then on).

What `get` answers is shared between threads and must never be changed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID

from ugc.platform.cache import LRU
from ugc.platform.database import Database, numbers_in
from ugc.platform.dialect import Query, Row
from ugc.platform.store import AGGREGATE_CACHE_SIZE, EventStores


class ReadOnlyAggregates:
    def __init__(self, stores: EventStores, db: Database, maxsize: int = AGGREGATE_CACHE_SIZE) -> None:
        self.stores = stores
        self.db = db
        # (application, aggregate id) -> (head of its log read before it was loaded, the aggregate)
        self._kept = LRU[tuple[str, UUID], tuple[int, Any]](maxsize)

    def now(self, applications: Collection[str]) -> ReadOnlyView:
        """A view of `applications` as they stand now: every aggregate it gives is at least this new."""
        return ReadOnlyView(self, self.stores.heads(applications))

    def numbered_query(self, applications: Collection[str], counts: Mapping[str, int]) -> Query | None:
        """One SELECT that reads the heads of `applications` and takes fresh numbers of each kind of
        `counts` (`Database.numbers_query`), for the caller to read beside something else in one
        round trip; None on SQLite."""
        return self.db.numbers_query(counts, self.stores.heads_columns(applications) or "")

    def numbered_now(
        self, applications: Collection[str], counts: Mapping[str, int], row: Row | None
    ) -> tuple[ReadOnlyView, dict[str, list[int]]]:
        """`now` and the numbers, as the row of `numbered_query` holds them; without a row (SQLite),
        read here."""
        if row is None:
            return self.now(applications), self.db.next_numbers_of(counts)
        numbers, heads = numbers_in(counts, row)
        return ReadOnlyView(self, {name: heads[name] or 0 for name in applications}), numbers

    def kept(self, application: str, aggregate_id: UUID) -> Any | None:
        """The aggregate as last kept, however old (no I/O): only for a fact of it that never changes."""
        kept = self._kept.get((application, aggregate_id))
        return kept[1] if kept is not None else None

    def _get(self, application: str, aggregate_id: UUID, head: int) -> Any:
        key = (application, aggregate_id)
        kept = self._kept.get(key)
        if kept is not None and kept[0] >= head:
            return kept[1]
        # Raises AggregateNotFoundError for an unknown id; nothing is kept then.
        aggregate: Any = self.stores[application].repository.get(aggregate_id)
        # Another thread may have kept one loaded at a later head meanwhile: that one stays.
        self._kept.put_unless(key, (head, aggregate), keep=lambda newer: newer[0] >= head)
        return aggregate


class ReadOnlyView:
    """Aggregates current as of the heads read when the view was made; read them, never change them."""

    def __init__(self, aggregates: ReadOnlyAggregates, heads: dict[str, int]) -> None:
        self._aggregates = aggregates
        self.heads = heads

    def get(self, application: str, aggregate_id: UUID) -> Any:
        return self._aggregates._get(application, aggregate_id, self.heads[application])
