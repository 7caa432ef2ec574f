"""The services listing searched by terms of every length, on a large catalog (PostgreSQL).

A search term of one or two characters has no trigram, so pg_trgm's index cannot serve it: its
exact total was counted by reading every active row (110-260 ms on 100,000 services,
bench/results/2026-12-06-0029-read-costs.md), and a deep page of it the same. This seeds `--count`
services (bench/seed_services.py: the catalog log, then the read models' catch-up, whose time is
printed: what the listing's indexes cost its writes), then times `list_services` in this process
(no HTTP: the query's own cost) for each term, after an ANALYZE, each time with nothing counted before
(`ListingTotals` fresh: the total of a new term, the costly case), first page and a deep one, on
the default ordering. The ceilings of the same run: a raw single-row INSERT+COMMIT and a
hello-world endpoint (bench/ceilings.py).

Usage:  .venv/bin/python bench/short_search.py [--count 100000] [--repeat 7] [--no-record]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import ceilings
import common
from common import fresh_database, record
from seed_services import seed

from readmodels.folding import search_words
from readmodels.pages import PageRequest
from readmodels.services import ListingTotals, ServiceFilters, list_services
from ugc.platform.database import Database

# Short terms first: a letter in every text, pairs in about half, an eighth and none of them, the
# LIKE wildcard as a literal; then terms trigrams serve, for comparison.
TERMS = ("о", "то", "ко", "ео", "zz", "%", "о с", "видео", "съёмка обзор")
PAGES = (1, 200)
PAGE_SIZE = 20


def timed(db: Database, term: str, page: int, repeat: int) -> tuple[float, int]:
    """Median milliseconds of `repeat` reads of the page, each counting its total afresh, and that total."""
    times, total = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        filters = ServiceFilters(search=search_words(term))
        found, _ = list_services(db, filters, PageRequest(page, PAGE_SIZE), ListingTotals())
        times.append(1e3 * (time.perf_counter() - started))
        total = found.count
    return statistics.median(times), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="services seeded")
    parser.add_argument("--repeat", type=int, default=7, help="reads of each page (the median is shown)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args()
    began = datetime.now(UTC)
    common.wait_for_quiet()
    ceiling = ceilings.measure(duration=3.0, connections=(16,))
    with fresh_database("ugc_bench_search") as url:
        seconds = seed(url, count=args.count, creators=500, batch=1000)
        db = Database(url)
        try:
            with db.transaction(write=True) as cur:
                cur.execute("ANALYZE")  # the statistics autovacuum would keep, for every read table
            rows = []
            for term in TERMS:
                for page in PAGES:
                    median, total = timed(db, term, page, args.repeat)
                    rows.append(f"| `{term}` | {len(term)} | {page} | {total:,} | {median:.1f} |")
        finally:
            db.close()
    section = "\n".join([
        f"## Searches by term length, {began:%Y-%m-%d %H:%M} UTC", "",
        f"Command: `python bench/short_search.py --count {args.count} --repeat {args.repeat}`. PostgreSQL; "
        f"{args.count:,} services seeded and projected in {seconds:.0f} s (catalog log, then the read models' "
        "catch-up).", "",
        ceilings.markdown(ceiling), "",
        f"`list_services` in process, default ordering, {PAGE_SIZE} a page, each read counting its total afresh "
        f"(median of {args.repeat}):", "",
        "| term | characters | page | total | ms |", "|---|---:|---:|---:|---:|", *rows,
    ])
    print(section)
    if not args.no_record:
        record(section, "short-search", began)


if __name__ == "__main__":
    main()
