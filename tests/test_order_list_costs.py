"""What the order lists read, however many parties the marketplace has and however busy they are:
the auditor's totals a few rows of `order_counts`, not one per party; the total of a list filtered
to a pair, the pair's orders, not every order of either party. The orders are stored by hand (for the totals,
counted by `ugc migrate`, as for a database from before the counts): it is the reads that are tested."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from readmodels import orders as read
from readmodels.pages import PageQuery, PageRequest, read_page
from tests.backends import fresh_database
from tests.plans import Statement, stored_by_hand, work
from ugc.platform.database import Database
from ugc.wiring import migrate

ORDERS = 6000  # each by a buyer of its own from a creator of its own
STATUSES = ("pending", "in_progress", "delivered", "completed", "cancelled")
PAGE = PageRequest(1, 20)


@pytest.fixture
def market(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of `ORDERS` orders, the n-th in status `STATUSES[n % 5]`, counted at migration."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        db = Database(url)
        try:
            with db.transaction(write=True) as cur:
                cur.execute(
                    "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < %s) "
                    "INSERT INTO orders (id, uuid, version, buyer_id, buyer_username, creator_id, creator_profile_id, "
                    "creator_username, service_id, service_title, status, requirements, price, total_price, "
                    "selected_options, delivery_date, created_at, updated_at) "
                    "SELECT n, 'o' || n, 1, 100000 + n, 'b', 200000 + n, n, 'c', n, 's', "
                    f"CASE n - n / 5 * 5 {' '.join(f'WHEN {i} THEN %s' for i in range(5))} END, "
                    "'r', 1, 1, %s, '2030-01-01', %s, %s FROM numbers",
                    (ORDERS, *STATUSES, [], datetime.now(UTC), datetime.now(UTC)),
                )
                cur.execute("DELETE FROM order_counts")
            migrate(db)
            with db.transaction(write=True) as cur:
                cur.execute("ANALYZE")
        finally:
            db.close()
        yield url


def test_the_auditors_totals_read_as_few_rows_as_one_partys(market: str) -> None:
    """The total of every order, and of every order in a status, costs what one party's total does
    over the statuses. Both summed the rows of `order_counts` of every buyer: 6,000 (1,200 for a status) on PostgreSQL,
    where one buyer's total reads 1."""
    db = Database(market)
    try:
        everything = read_page(db, read.list_all_orders(PAGE, read.OrderFilters()))
        cancelled = read_page(db, read.list_all_orders(PAGE, read.OrderFilters(status="cancelled")))
    finally:
        db.close()
    assert (everything.count, cancelled.count) == (ORDERS, ORDERS // 5)
    one_party = read.list_orders(100001, PAGE, role=None, filters=read.OrderFilters()).count
    totals = [read.list_all_orders(PAGE, read.OrderFilters(status=s)).count for s in (None, "cancelled")]
    party_work = work(market, [one_party], "order_counts")
    works = [work(market, [total], "order_counts") for total in totals]
    assert all(total <= len(STATUSES) * party_work for total in works), (works, party_work)


BUSY_BUYER, BUSY_CREATOR, QUIET_BUYER, QUIET_CREATOR = 1, 2, 3, 4


def pair_lists(buyer: int, creator: int) -> list[PageQuery]:
    """The lists filtered to a pair: the creator's by the buyer, the buyer's by the creator (either
    role, both branches), the auditor's by both."""
    return [
        read.list_orders(creator, PAGE, role="creator", filters=read.OrderFilters(buyer=buyer)),
        read.list_orders(buyer, PAGE, role=None, filters=read.OrderFilters(creator=creator)),
        read.list_all_orders(PAGE, read.OrderFilters(buyer=buyer, creator=creator)),
    ]


def pair_statements(buyer: int, creator: int) -> list[Statement]:
    """The totals and the first pages of `pair_lists`."""
    return [statement for page in pair_lists(buyer, creator) for statement in page.statements]


def test_a_pairs_lists_read_the_pairs_orders_however_busy_each_party_is(backend: str, tmp_path: Path) -> None:
    """A buyer and a creator with 3,000 orders each with others and 5 together, their oldest: the totals
    and first pages of the lists filtered to the pair read what those of a pair with only their 5
    orders do. Each total counted one party's orders, filtering by the other: on PostgreSQL 99,995 rows
    passed for 5 (~20 ms) where each party had 50,000. The pages walked the primary key from the newest
    order to the pair's oldest, 6,005 rows here: the planner took the two parties as independent, and
    their 3,000 orders each for a pair's 1,500."""
    with stored_by_hand(
        backend,
        tmp_path,
        (
            "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 6010) "
            "INSERT INTO orders (id, uuid, version, buyer_id, buyer_username, creator_id, creator_profile_id, "
            "creator_username, service_id, service_title, status, requirements, price, total_price, "
            "selected_options, delivery_date, created_at, updated_at) "
            "SELECT n, 'o' || n, 1, CASE WHEN n <= 5 THEN %s WHEN n <= 10 THEN %s "
            "WHEN n - n / 2 * 2 = 0 THEN %s ELSE 1000 + n END, 'b', CASE WHEN n <= 5 THEN %s "
            "WHEN n <= 10 THEN %s WHEN n - n / 2 * 2 = 1 THEN %s ELSE 9000 + n END, n, 'c', n, 's', "
            "'pending', 'r', 1, 1, %s, '2030-01-01', %s, %s FROM numbers",
            (
                BUSY_BUYER,
                QUIET_BUYER,
                BUSY_BUYER,
                BUSY_CREATOR,
                QUIET_CREATOR,
                BUSY_CREATOR,
                [],
                datetime.now(UTC),
                datetime.now(UTC),
            ),
        ),
    ) as db:
        for page in pair_lists(BUSY_BUYER, BUSY_CREATOR):
            busy = read_page(db, page)
            assert ([int(row["id"]) for row in busy.rows], busy.count) == ([5, 4, 3, 2, 1], 5)
        busy_work = [work(db.url, [statement], "orders") for statement in pair_statements(BUSY_BUYER, BUSY_CREATOR)]
        quiet_work = [work(db.url, [statement], "orders") for statement in pair_statements(QUIET_BUYER, QUIET_CREATOR)]
    assert all(b <= 2 * q for b, q in zip(busy_work, quiet_work, strict=True)), (busy_work, quiet_work)
