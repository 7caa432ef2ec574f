"""What the order lists read, however many parties the marketplace has and however busy they are:
the auditor's totals a few rows of `order_counts`, not one per party; the total of a list filtered
to a pair, the pair's orders, not every order of either party. The orders are stored by hand (for the totals,
counted by `ugc migrate`, as for a database from before the counts): it is the reads that are tested."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
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


MINUTE_ORDERS = 6000  # the n-th placed at START + n minutes, by buyer 1 + n % 2, from creator 11 + n % 3
START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = 1000  # orders in each window listed


def placed_a_minute_apart(*moved: tuple[int, int]) -> Statement:
    """`MINUTE_ORDERS` orders, the n-th in status `STATUSES[n % 5]`, placed n minutes after START, but
    for each (n, minutes) of `moved`, placed at START + minutes (a clock that disagreed)."""
    moves = " ".join(f"WHEN {n} THEN {minutes}" for n, minutes in moved)
    minutes = f"CASE n {moves} ELSE n END" if moved else "n"
    return (
        "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < %s) "
        "INSERT INTO orders (id, uuid, version, buyer_id, buyer_username, creator_id, creator_profile_id, "
        "creator_username, service_id, service_title, status, requirements, price, total_price, "
        "selected_options, delivery_date, created_at, updated_at) "
        "SELECT n, 'o' || n, 1, 1 + n - n / 2 * 2, 'b', 11 + n - n / 3 * 3, n, 'c', n, 's', "
        f"CASE n - n / 5 * 5 {' '.join(f'WHEN {i} THEN %s' for i in range(5))} END, "
        "'r', 1, 1, %s, '2030-01-01', minute.at, minute.at FROM numbers "
        f"JOIN minutes AS minute ON minute.m = {minutes}",
        (MINUTE_ORDERS, *STATUSES, []),
    )


def minutes_table(backend: str) -> Statement:
    """`minutes` (m, at): START + m minutes, for m up to MINUTE_ORDERS, as each backend stores a time."""
    at = (
        "CAST(%s AS TIMESTAMPTZ) + n * INTERVAL '1 minute'"
        if backend == "postgres"
        else "strftime('%Y-%m-%dT%H:%M:%S', %s, '+' || n || ' minutes') || '+00:00'"
    )
    return (
        "CREATE TABLE minutes AS WITH RECURSIVE numbers (n) AS "
        "(SELECT 0 UNION ALL SELECT n + 1 FROM numbers WHERE n < %s) "
        f"SELECT n AS m, {at} AS at FROM numbers",
        (MINUTE_ORDERS, START if backend == "postgres" else START.strftime("%Y-%m-%dT%H:%M:%S")),
    )


def windowed_lists(first: int, page: PageRequest = PAGE) -> list[PageQuery]:
    """The lists of the orders placed in the WINDOW minutes from START + `first` minutes: the auditor's, by
    status, by buyer, by pair; a buyer's own (either role, and as buyer), a creator's by status."""
    window = read.OrderFilters(
        created_after=START + timedelta(minutes=first), created_before=START + timedelta(minutes=first + WINDOW)
    )
    return [
        read.list_all_orders(page, window),
        read.list_all_orders(page, replace(window, status="pending")),
        read.list_all_orders(page, replace(window, buyer=1)),
        read.list_all_orders(page, replace(window, buyer=1, creator=11)),
        read.list_orders(1, page, role=None, filters=window),
        read.list_orders(2, page, role="buyer", filters=window),
        read.list_orders(12, page, role="creator", filters=replace(window, status="delivered")),
    ]


# Which of the n-th orders each of `windowed_lists` holds, the window aside (user 1 is nobody's creator).
HOLDS: list[Callable[[int], bool]] = [
    lambda n: True,
    lambda n: STATUSES[n % 5] == "pending",
    lambda n: 1 + n % 2 == 1,
    lambda n: 1 + n % 2 == 1 and 11 + n % 3 == 11,
    lambda n: 1 + n % 2 == 1,
    lambda n: 1 + n % 2 == 2,
    lambda n: 11 + n % 3 == 12 and STATUSES[n % 5] == "delivered",
]


def test_a_past_windows_page_reads_what_the_newest_windows_does(backend: str, tmp_path: Path) -> None:
    """A page of the orders placed in 1,000 minutes 4,900 orders ago reads what one of the last 1,000 minutes' does.
    Each walked the primary key (or a party's index) down from the newest order, skipping every order
    placed after the window: on PostgreSQL, at 20,000 orders, 16,550 rows for a page of 21 (12 ms)."""
    with stored_by_hand(backend, tmp_path, minutes_table(backend), placed_a_minute_apart()) as db:
        old, new = 100, MINUTE_ORDERS - WINDOW + 1
        for first in (old, new):
            for page in windowed_lists(first):
                found = [int(row["id"]) for row in read_page(db, page).rows]
                assert found and all(first <= n < first + WINDOW for n in found), (first, found)
        old_work = [work(db.url, list(page.statements), "orders") for page in windowed_lists(old)]
        new_work = [work(db.url, list(page.statements), "orders") for page in windowed_lists(new)]
    assert all(o <= 2 * n for o, n in zip(old_work, new_work, strict=True)), (old_work, new_work)


def test_a_windows_pages_hold_its_orders_newest_first_whatever_the_clocks_said(backend: str, tmp_path: Path) -> None:
    """Ids are placing order, times are the placing process's clock: where they disagree, a window's
    pages still hold exactly the orders placed in it, by id, newest first, and its total counts them.
    Moved: out of the window (150 before it, 1099 at its end), into it from before (40) and after
    (1200 at its last minute, 5000 in its middle)."""
    moved = ((150, 50), (40, 500), (5000, 700), (1099, 1100), (1200, 1099))
    minute = dict(moved)
    first = 100
    placed = [n for n in range(MINUTE_ORDERS, 0, -1) if first <= minute.get(n, n) < first + WINDOW]
    with stored_by_hand(backend, tmp_path, minutes_table(backend), placed_a_minute_apart(*moved)) as db:
        for number in (1, 2, 9, 25, 26, 51):
            page = PageRequest(number, 20)
            for query, holds in zip(windowed_lists(first, page), HOLDS, strict=True):
                listed = [n for n in placed if holds(n)]
                found = read_page(db, query)
                wanted = listed[page.offset : page.offset + page.size]
                assert ([int(row["id"]) for row in found.rows], found.count) == (wanted, len(listed)), number
