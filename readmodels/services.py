"""The `services` listing: one denormalised table and its creators' ratings, so a page of the list
is a single indexed query.

Its exact total is a second query, counted once per state of the table (see ListingTotals): with a
search it visits every match, and was what bounded the listing (bench/RESULTS.md). Kept by
`projections/listings.py`. Prices are shown from exact `{money}` columns but filtered and ordered
on integer minor units (`price_minor`, and ratings' `creator_rating_minor`, hundredths): exact on
both dialects, where SQLite would otherwise compare decimal text as text ("900" > "1000").

Search matches `search_text`, the title and description folded (readmodels/folding.py: casefolded,
"ё" read as "е", runs of whitespace as one space): a term is split into words (`search_words`), and
a service matches when its text holds every word as a substring, one condition per word:
* PostgreSQL: `LIKE '%word%'` served by a pg_trgm GIN index (one Bitmap Index Scan with a
  condition per word). Trigrams rather than full-text search because clients expect substring
  matches ("видео" in "видеообзор") in Russian and English alike, with no stemming dictionary to
  pick per row.
* SQLite: an FTS5 table with the trigram tokenizer over the same column, kept in step by triggers
  inside the projection's own transaction (so a reset or rebuild of `services` empties it too);
  each word is an FTS5 phrase, i.e. a contiguous substring, and phrases side by side must all match.
Words shorter than three characters have no trigram. On PostgreSQL their totals and collected
matches come from `service_grams`: each service's distinct pieces of one or two characters of
`search_text` (computed in Python by the projection: in SQL, `substr` over multibyte text walks
from the start each time, ~3 ms a row), under a GIN index; a word that short is in the text
exactly when it is one of them (a term's short words are looked up together, `@>` them all). A
table of its own, not a column of `services`: the pieces are about as large as the text, and every
read of `services` would carry them. Listings built before
it (`GRAMS_VERSION`) have it empty until their blue/green rebuild; until then, and on SQLite (no
arrays), such words are filtered by LIKE (a scan of the active rows if the term has no longer word).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from readmodels.folding import folded
from readmodels.pages import Page, PageRequest, Query
from ugc.platform.cache import LRU
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, Row, TextArray

DDL = (
    """CREATE TABLE IF NOT EXISTS services (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        creator_profile_id BIGINT NOT NULL,
        creator_user_id BIGINT NOT NULL,
        creator_username TEXT NOT NULL,
        category_id BIGINT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        base_price {money} NOT NULL,
        price_minor BIGINT NOT NULL,
        delivery_time INTEGER NOT NULL,
        options {json} NOT NULL,
        tags {json} NOT NULL,
        allows_modifications {bool} NOT NULL,
        modifications_price {money} NOT NULL,
        is_active {bool} NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL,
        search_text TEXT NOT NULL)""",
    # Partial indexes: the listing shows active services only, and the query repeats `is_active`.
    "CREATE INDEX IF NOT EXISTS services_newest ON services (created_at, id) WHERE is_active",
    "CREATE INDEX IF NOT EXISTS services_price ON services (price_minor, id) WHERE is_active",
    "CREATE INDEX IF NOT EXISTS services_category ON services (category_id, created_at, id) WHERE is_active",
    "CREATE INDEX IF NOT EXISTS services_creator ON services (creator_profile_id, created_at, id) WHERE is_active",
    # Ratings come from reviews, per creator, kept once per creator (a review writes one row, however
    # many services its creator has) and joined at read time. Ordering by rating walks the creators by
    # rating, then each one's services by id.
    """CREATE TABLE IF NOT EXISTS listing_creator_ratings (
        creator_profile_id BIGINT PRIMARY KEY,
        rating_sum BIGINT NOT NULL,
        rating_count BIGINT NOT NULL,
        creator_rating_minor BIGINT NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS services_creator_id ON services (creator_profile_id, id) WHERE is_active",
    # What served the rating copied into every service row (databases made before it moved).
    "DROP INDEX IF EXISTS services_rating",
    "DROP INDEX IF EXISTS services_by_creator",
    # Each service's pieces of one or two characters of its search text (PostgreSQL's alone: SQLite
    # keeps no arrays, and scans for such terms).
    """CREATE TABLE IF NOT EXISTS service_grams (
        id BIGINT PRIMARY KEY,
        grams {text_array} NOT NULL)""",
    {"postgresql": "CREATE INDEX IF NOT EXISTS service_grams_pieces ON service_grams USING GIN (grams)"},
    {"postgresql": "CREATE EXTENSION IF NOT EXISTS pg_trgm"},
    {
        "postgresql": "CREATE INDEX IF NOT EXISTS services_search_trgm ON services "
        "USING GIN (search_text gin_trgm_ops) WHERE is_active"
    },
    {
        "sqlite": "CREATE VIRTUAL TABLE IF NOT EXISTS services_search USING fts5("
        "search_text, content='services', content_rowid='id', tokenize='trigram')"
    },
    {
        "sqlite": """CREATE TRIGGER IF NOT EXISTS services_search_insert AFTER INSERT ON services BEGIN
            INSERT INTO services_search (rowid, search_text) VALUES (new.id, new.search_text);
        END"""
    },
    {
        "sqlite": """CREATE TRIGGER IF NOT EXISTS services_search_delete AFTER DELETE ON services BEGIN
            INSERT INTO services_search (services_search, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
        END"""
    },
    {
        "sqlite": """CREATE TRIGGER IF NOT EXISTS services_search_update AFTER UPDATE OF search_text ON services
        BEGIN
            INSERT INTO services_search (services_search, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
            INSERT INTO services_search (rowid, search_text) VALUES (new.id, new.search_text);
        END"""
    },
)

# The ratings' order: on a column older databases get later (readmodels/schema.py), so made after it.
RATING_INDEX = (
    "listing_creator_ratings_rating",
    "CREATE INDEX IF NOT EXISTS listing_creator_ratings_rating ON listing_creator_ratings "
    "(creator_rating_minor, creator_profile_id)",
)

# The listing projection's version from which `service_grams` holds every service's pieces.
GRAMS_VERSION = 2
# Its version now: 4, its search text (and so the pieces) folded with "ё" read as "е" (3) and every
# run of whitespace as one space (4).
LISTINGS_VERSION = 4
# The longest word `service_grams` answers: longer ones have trigrams.
GRAM_LENGTH = 2
# Short words are looked up through their pieces only when few rows hold them: then the pieces' index
# finds them at once, where LIKE reads the texts (100,000 services, custom plans, with statistics: a
# pair in none of them 0.8 ms against 44, in 1-5 % 6-12 ms against 45-71, in 10 % 39 against 82).
# From ~12 % PostgreSQL, which knows from the statistics how many rows hold the piece, reads every
# row's pieces instead of the index, 115-140 ms against LIKE's 51-78 (forcing the index gained
# nothing there). A sample of the first GRAMS_SAMPLE active rows tells which (bench/results,
# short-search).
GRAMS_SAMPLE = 1000
RARE_SHARE = 0.05

# A service's row and its creator's rating (`creator_rating_minor`, shown as `creator_rating`: `_rated`).
# Databases made before the rating moved still have unused `creator_rating`, `rating_minor` in `services`.
RATED = "services JOIN listing_creator_ratings USING (creator_profile_id)"
COLUMNS = (
    "id, creator_profile_id, creator_user_id, creator_username, creator_rating_minor, category_id, title, "
    "description, base_price, delivery_time, options, tags, allows_modifications, modifications_price, "
    "is_active, created_at, updated_at"
)

# `ordering=` value -> ORDER BY; ties broken by id in the same direction, so one index serves both ways.
ORDERINGS = {
    "-created_at": "created_at DESC, id DESC",
    "created_at": "created_at, id",
    "-price": "price_minor DESC, id DESC",
    "price": "price_minor, id",
    "-rating": "creator_rating_minor DESC, creator_profile_id DESC, id DESC",
    "rating": "creator_rating_minor, creator_profile_id, id",
}
DEFAULT_ORDERING = "-created_at"
HUNDRED = Decimal(100)
PROJECTION = "listings"
# The logs it follows, by the names the event store gives its applications (Catalog, Orders):
# the catalog's, and the orders' for reviews. The listing projection follows these very names.
CATALOG_LOG, ORDERS_LOG = "catalog", "orders"

# What reading one matching row costs when collecting all matches, in rows read by an index walk.
COLLECTED_ROW_COST = 4


@dataclass(frozen=True)
class ServiceFilters:
    category: int | None = None
    creator: int | None = None
    # The term's folded words (readmodels/folding.py, `search_words`); none, no search.
    search: tuple[str, ...] = ()
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    ordering: str = DEFAULT_ORDERING


def search_text(title: str, description: str) -> str:
    """What search matches: the title and description, folded."""
    return folded(f"{title} {description}")


def search_grams(text: str) -> TextArray:
    """The distinct pieces of one and two characters of `text` (a `search_text`), sorted."""
    return TextArray(sorted({text[i : i + n] for n in range(1, GRAM_LENGTH + 1) for i in range(len(text) - n + 1)}))


def minor_units(amount: Decimal, rounding: str = ROUND_HALF_UP) -> int:
    """Hundredths of `amount` as an integer (kopecks for prices, 1/100 of a star for ratings)."""
    return int((amount * HUNDRED).to_integral_value(rounding=rounding))


_POSITIONS = f"SELECT application, position FROM projection_tracking WHERE projection = '{PROJECTION}'"


# Where the listing stands in the logs it follows: (catalog position, orders position).
ListingState = tuple[int | None, int | None]


@dataclass
class ListingTotals:
    """The exact totals this process has counted, keyed by filters and the catalog position.

    A listing table's rows and their positions commit together, and a rebuild passes through the
    same positions with the same rows, so a total counted at some position is what every later
    count at that position would find: never stale, and any event that changes the listing moves
    a position. Totals depend only on columns the catalog log writes (is_active, category, creator,
    price, search text; reviews change ratings alone). The total is the costliest statement of a
    search (it visits every match).
    """

    counted: LRU[tuple[object, ...], int] = field(default_factory=lambda: LRU[tuple[object, ...], int](4096))


def count_query(filters: ServiceFilters, dialect: str, *, grams: bool = False) -> Query:
    """The total of `filters`; with `grams`, the term's short words are looked up in `service_grams`."""
    where, params = _where(filters, dialect, grams=grams)
    return f"SELECT COUNT(*) AS n FROM services WHERE {where}", params


def page_query(
    filters: ServiceFilters, page: PageRequest, dialect: str, *, matches_first: bool, grams: bool = False
) -> Query:
    """One page of the listing, walked along the ordering's index or, with `matches_first`, from the matches.

    Walking the index stops after `offset + size` matches, which is cheap while matches are dense;
    for a rare search term it reads most of the table. Collecting the matches first (the trigram
    index, then a sort of the few) costs what there are matches. The planner cannot tell the two
    cases apart, as it cannot estimate how many rows `LIKE '%term%'` matches (for a rare phrase it
    guessed 386 where there were 76 and read 60,000 rows, 33 ms instead of 4); `list_services`
    chooses from the exact total instead. The matches of short words are collected through
    `service_grams` (with `grams`); a walk filters with LIKE.
    """
    order = ORDERINGS[filters.ordering]
    if not matches_first:
        where, params = _where(filters, dialect)
        sql = f"SELECT {COLUMNS} FROM {RATED} WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s"
        return sql, [*params, page.size, page.offset]
    where, params = _where(filters, dialect, grams=grams)
    sql = (
        "WITH matches AS MATERIALIZED ("
        f"SELECT id, creator_profile_id, created_at, price_minor, creator_rating_minor FROM {RATED} WHERE {where}) "
        f"SELECT {COLUMNS} FROM {RATED} WHERE id IN ("
        f"SELECT id FROM matches ORDER BY {order} LIMIT %s OFFSET %s) ORDER BY {order}"
    )
    return sql, [*params, page.size, page.offset]


def matches_first(filters: ServiceFilters, page: PageRequest, total: int, active: int) -> bool:
    """Whether collecting a search's `total` matches is cheaper than walking an index past `active` rows.

    Walking reads about (offset + size) * active / total rows to find its page, in index order, so the
    rows it reads sit together; collecting reads every match (and every trigram candidate) wherever it
    lies. Measured on 100,000 services: 0.34 us a walked row, 1.3 us a collected one, hence the
    weight. Only search needs this: the other filters are columns whose statistics the planner reads.
    """
    walked = (page.offset + page.size) * active / max(total, 1)
    return bool(filters.search) and COLLECTED_ROW_COST * total < walked


async def listing_state(db: Database) -> ListingState:
    """The listing's positions: one autocommit read. Anything read at the same state is the same."""
    return _state_of(await db.fetch_async(_POSITIONS))


def list_services(
    db: Database, filters: ServiceFilters, page: PageRequest, totals: ListingTotals
) -> tuple[Page, ListingState]:
    """One page and its exact total, both read from one snapshot, and the state they were read at."""
    with db.transaction() as cur:
        if db.dialect == "postgresql":
            # One snapshot for the positions, the totals and the page. And custom plans: psycopg prepares
            # a statement it has run five times, and PostgreSQL then tries a generic plan, blind to the
            # values: it cannot tell `LIKE '%word%'` (the trigram index) from a range of prices, and
            # picked the price index and a filter over 38,000 rows (50 ms instead of 7).
            # And the bound of a page read's statements (`Database.page_bound`).
            cur.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL plan_cache_mode = force_custom_plan; "
                + db.page_bound
            )
        state = _state(cur)
        # Asked only when counting or collecting matches: a remembered total and a walk need neither.
        grams = functools.cache(lambda: _by_pieces(cur, filters))
        total = _total(cur, db, filters, state[0], totals, grams=grams)
        if page.offset >= total:
            return Page(rows=[], count=total), state
        active = _total(cur, db, ServiceFilters(), state[0], totals) if filters.search else total
        first = matches_first(filters, page, total, active)
        rows = cur.execute(
            *page_query(filters, page, db.dialect, matches_first=first, grams=first and grams())
        ).fetchall()
    return Page(rows=[_rated(row) for row in rows], count=total), state


def _rated(row: Row) -> Row:
    """The row with its creator's rating as shown: `creator_rating_minor` hundredths as an exact amount."""
    row["creator_rating"] = Decimal(int(row.pop("creator_rating_minor"))).scaleb(-2)
    return row


def _state(cur: Cursor) -> ListingState:
    return _state_of(cur.execute(_POSITIONS).fetchall())


def _state_of(rows: list[Row]) -> ListingState:
    positions = {row["application"]: int(row["position"]) for row in rows}
    return positions.get(CATALOG_LOG), positions.get(ORDERS_LOG)


def _by_pieces(cur: Cursor, filters: ServiceFilters) -> bool:
    """Whether `filters`' short search words are to be looked up in `service_grams`: there are some,
    they are rare together (in at most RARE_SHARE of a sample of the first GRAMS_SAMPLE active rows:
    the lookup's cost follows how many rows of the whole table hold them, whatever the other
    filters), and the listing tables read (those of this transaction) keep the pieces as the term is
    folded: PostgreSQL's, built by `LISTINGS_VERSION` on."""
    short = _short(filters.search)
    if cur.dialect != "postgresql" or not short:
        return False
    hits = " AND ".join(["search_text LIKE %s"] * len(short))
    row = cur.execute(
        "SELECT (SELECT version FROM projection_versions WHERE projection = %s) AS version, "
        f"COUNT(*) AS n, COUNT(*) FILTER (WHERE {hits}) AS hits "
        "FROM (SELECT search_text FROM services WHERE is_active LIMIT %s) AS sample",
        (PROJECTION, *(f"%{_escape_like(word)}%" for word in short), GRAMS_SAMPLE),
    ).fetchone()
    if row is None or (row["version"] or 0) < LISTINGS_VERSION:
        return False
    return int(row["hits"]) <= RARE_SHARE * int(row["n"])


def _total(
    cur: Cursor,
    db: Database,
    filters: ServiceFilters,
    position: int | None,
    totals: ListingTotals,
    *,
    grams: Callable[[], bool] = lambda: False,
) -> int:
    """The exact number of services `filters` selects, counted unless counted before at this position
    (the same whichever way it is counted: through `service_grams` if `grams()` says so)."""
    key = (db.url, replace(filters, ordering=DEFAULT_ORDERING), position)
    total = totals.counted.get(key)
    if total is None:
        counted = cur.execute(*count_query(filters, db.dialect, grams=grams())).fetchone()
        total = int(counted["n"]) if counted else 0
        totals.counted.put(key, total)
    return total


def get_service(db: Database, service_id: int) -> tuple[Row, ListingState] | None:
    """A service by id, deactivated ones included (orders placed earlier still show it), and the
    state it was read at: one statement, so one snapshot and one round trip."""
    position = "(SELECT position FROM projection_tracking WHERE projection = %s AND application = %s)"
    with db.read() as cur:
        row = cur.execute(
            f"SELECT {COLUMNS}, version, {position} AS _catalog, {position} AS _orders FROM {RATED} WHERE id = %s",
            (PROJECTION, CATALOG_LOG, PROJECTION, ORDERS_LOG, service_id),
        ).fetchone()
    return None if row is None else (_rated(row), (row.pop("_catalog"), row.pop("_orders")))


def active_of_creator(db: Database, creator_profile_id: int) -> list[int]:
    """The ids of a creator's active services, oldest first (the index `services_creator_id`)."""
    with db.read() as cur:
        rows = cur.execute(
            "SELECT id FROM services WHERE creator_profile_id = %s AND is_active ORDER BY id", (creator_profile_id,)
        ).fetchall()
    return [int(row["id"]) for row in rows]


def _where(filters: ServiceFilters, dialect: str, *, grams: bool = False) -> tuple[str, list[object]]:
    clauses: list[str] = ["is_active"]
    params: list[object] = []
    if filters.category is not None:
        clauses.append("category_id = %s")
        params.append(filters.category)
    if filters.creator is not None:
        clauses.append("creator_profile_id = %s")
        params.append(filters.creator)
    if filters.min_price is not None:
        clauses.append("price_minor >= %s")
        params.append(minor_units(filters.min_price, ROUND_CEILING))
    if filters.max_price is not None:
        clauses.append("price_minor <= %s")
        params.append(minor_units(filters.max_price, ROUND_FLOOR))
    long = [word for word in filters.search if len(word) > GRAM_LENGTH]
    short = _short(filters.search)
    if grams and short:
        pieces = ", ".join(["%s::text"] * len(short))
        clauses.append(f"id IN (SELECT id FROM service_grams WHERE grams @> ARRAY[{pieces}])")
        params.extend(short)
        short = []
    if dialect == "sqlite" and long:
        clauses.append("id IN (SELECT rowid FROM services_search WHERE services_search MATCH %s)")
        params.append(" ".join('"' + word.replace('"', '""') + '"' for word in long))
        long = []
    for word in (*long, *short):
        # PostgreSQL's LIKE escapes with a backslash by default; SQLite's needs to be told.
        clauses.append("search_text LIKE %s" + (" ESCAPE '\\'" if dialect == "sqlite" else ""))
        params.append(f"%{_escape_like(word)}%")
    return " AND ".join(clauses), params


def _short(words: tuple[str, ...]) -> list[str]:
    """The words too short to have a trigram."""
    return [word for word in words if len(word) <= GRAM_LENGTH]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
