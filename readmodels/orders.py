"""The orders read model: lists and details for both parties, deliveries, reviews, creator stats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from readmodels.pages import PageQuery, PageRequest, Query
from ugc.platform.database import Database
from ugc.platform.dialect import Row

# The (user id, role) of the rows of `order_counts` that count every order, by status: the auditor's
# totals read a row per status where summing every party's rows read one per party (no user has id 0).
EVERY_ORDER = (0, "all")
# A buyer and a creator as one value, the key of `orders_pair_key` (`pair_key` makes its parameter).
PAIR = "(CAST(buyer_id AS TEXT) || '/' || CAST(creator_id AS TEXT))"

DDL = (
    """CREATE TABLE IF NOT EXISTS orders (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        buyer_id BIGINT NOT NULL,
        buyer_username TEXT NOT NULL,
        creator_id BIGINT NOT NULL,
        creator_profile_id BIGINT NOT NULL,
        creator_username TEXT NOT NULL,
        service_id BIGINT NOT NULL,
        service_title TEXT NOT NULL,
        status TEXT NOT NULL,
        requirements TEXT NOT NULL,
        price {money} NOT NULL,
        total_price {money} NOT NULL,
        selected_options {json} NOT NULL,
        delivery_date TEXT NOT NULL,
        cancellation_reason TEXT,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL,
        delivered_at {timestamp},
        completed_at {timestamp},
        cancelled_at {timestamp})""",
    # A party's list, newest first: with a status filter, and without one (its first page must not
    # sort every order a busy buyer ever placed).
    "CREATE INDEX IF NOT EXISTS orders_buyer ON orders (buyer_id, status, id DESC)",
    "CREATE INDEX IF NOT EXISTS orders_creator ON orders (creator_id, status, id DESC)",
    "CREATE INDEX IF NOT EXISTS orders_buyer_newest ON orders (buyer_id, id DESC)",
    "CREATE INDEX IF NOT EXISTS orders_creator_newest ON orders (creator_id, id DESC)",
    "CREATE INDEX IF NOT EXISTS orders_due ON orders (status, delivered_at)",
    # The orders of one buyer with one creator, newest first: a list filtered to a pair (a party's by
    # the other party, an auditor's by both) reads the pair's, where one party's index passed every
    # order of theirs with others (99,995 for 5, when each had 50,000). Keyed by one expression, not
    # the two columns: the planner keeps statistics of an index's expression, so it knows how many
    # orders a pair has, where it multiplied the parties' shares as if independent and, for a pair of
    # busy parties, walked the primary key from the newest order to the pair's oldest (6,005 for 5).
    "DROP INDEX IF EXISTS orders_pair",  # (buyer_id, creator_id, id DESC)
    f"CREATE INDEX IF NOT EXISTS orders_pair_key ON orders ({PAIR}, id DESC)",
    # An auditor's list of every order, newest first, by status or by when orders were placed.
    "CREATE INDEX IF NOT EXISTS orders_status_newest ON orders (status, id DESC)",
    # The ids of the orders placed in a time window: a page of a window that ends (`window_page`)
    # picks its ids from the window's entries here, where a walk down the primary key passed every
    # order placed since.
    "DROP INDEX IF EXISTS orders_created",  # (created_at)
    "CREATE INDEX IF NOT EXISTS orders_created_id ON orders (created_at, id)",
    # How many orders each party has in each status: the lists' totals without counting rows.
    """CREATE TABLE IF NOT EXISTS order_counts (
        user_id BIGINT NOT NULL,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (user_id, role, status))""",
    # Filled from `orders` once, where a database from before this table has orders but no counts.
    """INSERT INTO order_counts (user_id, role, status, n)
        SELECT buyer_id, 'buyer', status, COUNT(*) FROM orders
        WHERE NOT EXISTS (SELECT 1 FROM order_counts) GROUP BY buyer_id, status
        UNION ALL
        SELECT creator_id, 'creator', status, COUNT(*) FROM orders
        WHERE NOT EXISTS (SELECT 1 FROM order_counts) GROUP BY creator_id, status""",
    # Every order's, by status (`EVERY_ORDER`), where a database from before them has orders but not these.
    f"""INSERT INTO order_counts (user_id, role, status, n)
        SELECT {EVERY_ORDER[0]}, '{EVERY_ORDER[1]}', status, COUNT(*) FROM orders
        WHERE NOT EXISTS (SELECT 1 FROM order_counts WHERE user_id = {EVERY_ORDER[0]}) GROUP BY status""",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id BIGINT PRIMARY KEY,
        order_id BIGINT NOT NULL,
        message TEXT NOT NULL,
        file_ids {json} NOT NULL,
        created_at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries (order_id, id)",
    """CREATE TABLE IF NOT EXISTS delivered_files (
        file_id BIGINT NOT NULL,
        order_id BIGINT NOT NULL,
        PRIMARY KEY (file_id, order_id))""",
    """CREATE TABLE IF NOT EXISTS reviews (
        id BIGINT PRIMARY KEY,
        order_id BIGINT NOT NULL UNIQUE,
        creator_profile_id BIGINT NOT NULL,
        reviewer_id BIGINT NOT NULL,
        reviewer_username TEXT NOT NULL,
        service_id BIGINT NOT NULL,
        service_title TEXT NOT NULL,
        rating INTEGER NOT NULL,
        content TEXT NOT NULL,
        created_at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS reviews_creator ON reviews (creator_profile_id, id DESC)",
    # How many reviews each creator has: the total of their list without counting rows.
    """CREATE TABLE IF NOT EXISTS review_counts (
        creator_profile_id BIGINT PRIMARY KEY,
        n BIGINT NOT NULL)""",
    # Filled from `reviews` once, where a database from before this table has reviews but no counts.
    """INSERT INTO review_counts (creator_profile_id, n)
        SELECT creator_profile_id, COUNT(*) FROM reviews
        WHERE NOT EXISTS (SELECT 1 FROM review_counts) GROUP BY creator_profile_id""",
    """CREATE TABLE IF NOT EXISTS creator_stats (
        creator_profile_id BIGINT PRIMARY KEY,
        rating_sum BIGINT NOT NULL DEFAULT 0,
        rating_count BIGINT NOT NULL DEFAULT 0,
        rating {money} NOT NULL DEFAULT 0,
        completed_orders BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS creator_stats_orders (
        order_uuid TEXT PRIMARY KEY,
        creator_profile_id BIGINT NOT NULL)""",
)

ORDER_COLUMNS = (
    "id, version, buyer_id, buyer_username, creator_id, creator_profile_id, creator_username, service_id, "
    "service_title, status, requirements, price, total_price, selected_options, delivery_date, "
    "cancellation_reason, created_at, updated_at, delivered_at, completed_at, cancelled_at"
)
# The statuses in which the work is still to deliver: past its delivery date, such an order is late.
TO_DELIVER = ("pending", "in_progress")
PARTY_COLUMNS = {"buyer": "buyer_id", "creator": "creator_id"}


def get_order(db: Database, order_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = %s", (order_id,)).fetchone()


@dataclass(frozen=True)
class OrderFilters:
    """Filters of an order list: the buyer's and the creator's user ids, the status, when it was
    placed (`created_after` included, `created_before` excluded)."""

    buyer: int | None = None
    creator: int | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def conditions(self, party: tuple[str, int] | None = None) -> tuple[list[str], list[object]]:
        """The filters set, as SQL conditions (joined with AND) and their parameters; with `party` (a
        column of PARTY_COLUMNS and a user id: a party's own list), that party's too. A buyer and a
        creator both given are one condition on PAIR, which `orders_pair_key` answers."""
        named = (*([party] if party else []), ("buyer_id", self.buyer), ("creator_id", self.creator))
        fixed = [(column, value) for column, value in named if value is not None]
        buyers = [value for column, value in fixed if column == "buyer_id"]
        creators = [value for column, value in fixed if column == "creator_id"]
        if len(buyers) == 1 and len(creators) == 1:
            equal: list[tuple[str, object]] = [(f"{PAIR} = %s", pair_key(buyers[0], creators[0]))]
        else:
            equal = [(f"{column} = %s", value) for column, value in fixed]
        given = [
            *equal,
            *(
                (condition, value)
                for condition, value in (
                    ("status = %s", self.status),
                    ("created_at >= %s", self.created_after),
                    ("created_at < %s", self.created_before),
                )
                if value is not None
            ),
        ]
        return [condition for condition, _ in given], [value for _, value in given]

    @property
    def picks_window(self) -> bool:
        """Whether a page picks its ids from the time window's entries (`window_page`): the window ends
        (`created_before`), so its newest orders may be far from the newest of all."""
        return self.created_before is not None

    @property
    def counted(self) -> bool:
        """Whether `order_counts` has the total of every order so filtered (`list_all_orders`): one
        party or none, and no time range."""
        timed = self.created_after is not None or self.created_before is not None
        return not timed and (self.buyer is None or self.creator is None)


def pair_key(buyer: int, creator: int) -> str:
    """The value of PAIR for the orders of `buyer` with `creator`."""
    return f"{buyer}/{creator}"


def walk(where: str) -> str:
    """The orders that `where` selects, newest first, at most as many as a parameter after `where`'s:
    a walk down the index that `where` starts, or the primary key."""
    return f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where} ORDER BY id DESC LIMIT %s"


def window_page(where: str) -> str:
    """The orders that `where` selects, newest first, at most as many as a parameter after `where`'s,
    for a window that ends (`OrderFilters.picks_window`).

    Ordered by id, such a page was a walk down the primary key (or a party's index) filtering by
    time: the planner takes the window's orders as spread evenly over the ids, where they are
    together (ids are given in placing order), so it passed every order placed after the window
    (16,550 rows for a page of 21 of 20,000 orders). Here the ids are picked by time and sorted by
    `id + 0`, which no index orders, so the planner cannot walk one instead: from the window's
    entries of `orders_created_id` (no row read when the window is the only filter; with another,
    the window's rows), or from a party's index where that party has fewer orders than the window;
    then only the rows up to the page's end are read. Times and ids need not agree (each is the
    placing process's clock): the ids are chosen by time and ordered by id. That costs what the
    window's count costs (a window ending near now, whose walk passed few orders, pays it too), never
    the orders around it. No per-party time index: every order event is a non-HOT update that
    touches each index of `orders` (issue 15)."""
    ids = f"SELECT id FROM orders WHERE {where} ORDER BY id + 0 DESC LIMIT %s"
    return f"SELECT {ORDER_COLUMNS} FROM orders WHERE id IN ({ids}) ORDER BY id DESC"


def list_orders(user_id: int, page: PageRequest, *, role: str | None, filters: OrderFilters) -> PageQuery:
    """The caller's orders as buyer and/or creator, newest first (id order is placing order), filtered.

    The total comes from `order_counts` when only the status filters, not from counting rows: a
    busy buyer has thousands.
    """
    parties = [role] if role else list(PARTY_COLUMNS)
    # Each party's branch: its conditions (joined with AND) and their parameters.
    branches = [
        (" AND ".join(conditions), params)
        for conditions, params in (filters.conditions((PARTY_COLUMNS[party], user_id)) for party in parties)
    ]
    # One indexed branch per party, each cut to the rows the page can need: UNION ALL keeps every
    # branch on its own index (an OR would not), and the inner LIMIT stops each index walk early.
    # Nobody can order their own service, so the two branches never share a row.
    # (Each branch is a subquery: SQLite refuses ORDER BY and LIMIT on a bare member of a UNION.)
    selects = " UNION ALL ".join(
        f"SELECT * FROM ({window_page(where) if filters.picks_window else walk(where)}) AS {party}"
        for party, (where, _) in zip(parties, branches, strict=True)
    )
    params = [value for _, branch_params in branches for value in (*branch_params, page.offset + page.size)]
    rows = (f"SELECT * FROM ({selects}) AS mine ORDER BY id DESC", params)
    if filters != OrderFilters(status=filters.status):  # order_counts has totals by status alone
        counts = " + ".join(f"(SELECT COUNT(*) FROM orders WHERE {where})" for where, _ in branches)
        count_params = [value for _, branch_params in branches for value in branch_params]
        return PageQuery(page, (f"SELECT {counts} AS n", count_params), rows)
    marks = ", ".join(["%s"] * len(parties))
    status, status_params = ("", []) if filters.status is None else (" AND status = %s", [filters.status])
    return PageQuery(
        page,
        (
            f"SELECT COALESCE(SUM(n), 0) AS n FROM order_counts WHERE user_id = %s AND role IN ({marks}){status}",
            [user_id, *parties, *status_params],
        ),
        rows,
    )


def list_all_orders(page: PageRequest, filters: OrderFilters) -> PageQuery:
    """Every order, newest first, as an auditor lists them.

    Each filter has an index that starts the walk (`orders_buyer*`, `orders_creator*`,
    `orders_status_newest`; none: the primary key); a window that ends picks its ids by time
    (`window_page`). The total comes from
    `order_counts` whenever it can (one party or none, no time range; none: `EVERY_ORDER`'s rows):
    the whole table counted row by row would cost a scan of every order on each first page.
    """
    conditions, params = filters.conditions()
    where = " AND ".join(conditions) or "TRUE"
    if filters.picks_window:
        rows: Query = (window_page(where), [*params, page.offset + page.size])
    else:
        rows = (f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where} ORDER BY id DESC", params)
    if not filters.counted:
        return PageQuery(page, (f"SELECT COUNT(*) AS n FROM orders WHERE {where}", params), rows)
    user, role = EVERY_ORDER
    if filters.creator is not None:
        user, role = filters.creator, "creator"
    elif filters.buyer is not None:
        user, role = filters.buyer, "buyer"
    status = "" if filters.status is None else " AND status = %s"
    count = (
        f"SELECT COALESCE(SUM(n), 0) AS n FROM order_counts WHERE user_id = %s AND role = %s{status}",
        [user, role, *([] if filters.status is None else [filters.status])],
    )
    return PageQuery(page, count, rows)


def list_deliveries(db: Database, order_id: int) -> list[Row]:
    with db.read() as cur:
        return cur.execute(
            "SELECT id, order_id, message, file_ids, created_at FROM deliveries WHERE order_id = %s ORDER BY id",
            (order_id,),
        ).fetchall()


def page_of_deliveries(order_id: int, page: PageRequest) -> PageQuery:
    """`GET /api/v1/orders/{id}/deliveries/`: the order's deliveries, oldest first."""
    return PageQuery(
        page,
        ("SELECT COUNT(*) AS n FROM deliveries WHERE order_id = %s", (order_id,)),
        (
            "SELECT id, order_id, message, file_ids, created_at FROM deliveries WHERE order_id = %s ORDER BY id",
            (order_id,),
        ),
    )


def get_review_of_order(db: Database, order_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute("SELECT * FROM reviews WHERE order_id = %s", (order_id,)).fetchone()


def list_reviews(creator_profile_id: int, page: PageRequest) -> PageQuery:
    """The creator's reviews, newest first; the total from `review_counts`, kept with the rows: a
    COUNT read every review of a much reviewed creator."""
    return PageQuery(
        page,
        ("SELECT n FROM review_counts WHERE creator_profile_id = %s", (creator_profile_id,)),
        ("SELECT * FROM reviews WHERE creator_profile_id = %s ORDER BY id DESC", (creator_profile_id,)),
    )


def creator_stats(db: Database, creator_profile_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(
            "SELECT rating, completed_orders FROM creator_stats WHERE creator_profile_id = %s", (creator_profile_id,)
        ).fetchone()


def due_for_auto_completion(db: Database, delivered_before: object, limit: int = 100) -> list[int]:
    with db.read() as cur:
        rows = cur.execute(
            "SELECT id FROM orders WHERE status = 'delivered' AND delivered_at <= %s ORDER BY delivered_at LIMIT %s",
            (delivered_before, limit),
        ).fetchall()
    return [int(row["id"]) for row in rows]


def cancellable_of_party(db: Database, user_id: int) -> list[int]:
    """The ids of the `pending` and `in_progress` orders whose buyer or creator `user_id` is, oldest
    first: each side by its party's index (`orders_buyer`, `orders_creator`)."""
    with db.read() as cur:
        rows = cur.execute(
            "SELECT id FROM orders WHERE buyer_id = %s AND status IN ('pending', 'in_progress') "
            "UNION SELECT id FROM orders WHERE creator_id = %s AND status IN ('pending', 'in_progress') ORDER BY id",
            (user_id, user_id),
        ).fetchall()
    return [int(row["id"]) for row in rows]


def is_late(row: Row, today: date) -> bool:
    """Whether the creator missed the delivery date: an order still to deliver is late once its day has
    passed; a delivered one, awaiting only the buyer, is late if its (last) delivery came after that day."""
    due = date.fromisoformat(row["delivery_date"])
    if row["status"] == "delivered":
        delivered: datetime = row["delivered_at"]
        return delivered.astimezone(UTC).date() > due
    return row["status"] in TO_DELIVER and due < today


def files_by_id(db: Database, file_ids: list[int]) -> dict[int, Row]:
    """The stored files named by deliveries, whether or not their owner still lists them."""
    if not file_ids:
        return {}
    marks = ", ".join(["%s"] * len(file_ids))
    with db.read() as cur:
        rows = cur.execute(f"SELECT id, name, size, content_type FROM files WHERE id IN ({marks})", file_ids).fetchall()
    return {int(row["id"]): row for row in rows}


def delivered_to(db: Database, file_id: int, user_id: int) -> bool:
    """Whether the file was delivered in an order `user_id` takes part in (such files stay readable to both)."""
    with db.read() as cur:
        row = cur.execute(
            "SELECT 1 AS found FROM delivered_files d JOIN orders o ON o.id = d.order_id "
            "WHERE d.file_id = %s AND (o.buyer_id = %s OR o.creator_id = %s) LIMIT 1",
            (file_id, user_id, user_id),
        ).fetchone()
    return row is not None
