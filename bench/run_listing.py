"""The services listing under load, read against this machine's hello-world ceiling, in one run.

Seeds 100,000 services through the application on a fresh PostgreSQL database (seed_services.py:
command handlers and the event store, then the projections catch up; or reuses a seeded database
with --database-url), starts `ugc serve` (one uvicorn worker, as `make run` does) and measures with
loadgen.py, at 16 and 64 connections:

* listing   GET /api/v1/services/?search=<word>&min_price=..&max_price=..&page=2  (the target)
* listing   the same with a rarer and a more common word, and the first page without filters
* detail    GET /api/v1/services/{id}/  (one primary-key read: the per-request floor of the API)
* healthz   GET /healthz/               (no database: the framework's own cost in `ugc serve`)

beside the hello-world ceiling of ceilings.py measured in the same run. It also EXPLAIN ANALYZEs the
target's two statements (the paginated total and the page, the exact SQL readmodels/services.py
sends) and times each alone, so the share of the `COUNT(*)` is a measured figure. Prints markdown
and writes it to a dated file in bench/results/ (common.record).

Usage:  .venv/bin/python bench/run_listing.py [--database-url URL] [--duration 10] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

import ceilings
import httpx
import loadgen
import psycopg
import seed_services
from common import fresh_database, record, wait_for_quiet
from loadgen import Result, Scenario
from run_auth import ugc_server

from readmodels.folding import search_words
from readmodels.pages import PageRequest
from readmodels.services import ServiceFilters, count_query, matches_first, page_query

CORES = os.cpu_count() or 1
PRICE_RANGE = (Decimal(1000), Decimal(20000))


@dataclass(frozen=True)
class Case:
    label: str
    path: str


@dataclass(frozen=True)
class QueryCost:
    label: str
    sql: str
    median_ms: float
    p90_ms: float
    plan: str


def listing_path(search: str | None, *, page: int = 1, prices: bool = True) -> str:
    params: dict[str, object] = {}
    if search:
        params["search"] = search
    if prices:
        params |= {"min_price": PRICE_RANGE[0], "max_price": PRICE_RANGE[1]}
    if page > 1:
        params["page"] = page
    return "/api/v1/services/" + (f"?{urlencode(params)}" if params else "")


def selectivity(url: str, word: str) -> tuple[int, int]:
    """(services matching the word, of which in the price range) - what the count has to visit."""
    counts = []
    with psycopg.connect(url) as conn:
        for filters in (
            ServiceFilters(search=search_words(word)),
            ServiceFilters(search=search_words(word), min_price=PRICE_RANGE[0], max_price=PRICE_RANGE[1]),
        ):
            row = conn.execute(*count_query(filters, "postgresql")).fetchone()
            counts.append(int(row[0]) if row else 0)
    return counts[0], counts[1]


def query_costs(url: str, words: list[str], runs: int = 50) -> list[QueryCost]:
    """Each word's total and page statements alone: median and p90 over `runs`, and their EXPLAIN ANALYZE.

    The page statement is the one list_services chooses (walking the index or collecting the matches).
    """
    page = PageRequest(2, 20)
    costs = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_custom_plan")  # as list_services does (see its comment)
        (active,) = conn.execute(*count_query(ServiceFilters(), "postgresql")).fetchone() or (0,)
        statements = []
        for word in words:
            filters = ServiceFilters(search=search_words(word), min_price=PRICE_RANGE[0], max_price=PRICE_RANGE[1])
            (total,) = conn.execute(*count_query(filters, "postgresql")).fetchone() or (0,)
            first = matches_first(filters, page, total, active)
            way = "collecting the matches" if first else "walking the ordering's index"
            statements += [
                (f"`{word}`: the total (counted when not remembered)", count_query(filters, "postgresql")),
                (f"`{word}`: page 2, {way}", page_query(filters, page, "postgresql", matches_first=first)),
            ]
        for label, (sql, params) in statements:
            timings = []
            for _ in range(runs):
                began = time.perf_counter()
                conn.execute(sql, params).fetchall()
                timings.append((time.perf_counter() - began) * 1000)
            timings.sort()
            plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params))
            shown = sql
            for value in params:  # the plan shows the values; show them in the SQL too
                shown = shown.replace("%s", repr(value) if isinstance(value, str) else str(value), 1)
            costs.append(QueryCost(label, shown, statistics.median(timings), timings[int(runs * 0.9)], plan))
    return costs


class Writer:
    """Edits one seeded service `rate` times a second over HTTP while the listing is loaded.

    Every edit moves the listing projection's position, so remembered answers and totals stop matching
    and the listing counts again: the cost of the COUNT(*) shows up in the HTTP figures.
    """

    def __init__(self, base: str, url: str, rate: float) -> None:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT id, creator_username FROM services WHERE is_active ORDER BY id LIMIT 1"
            ).fetchone()
        assert row is not None, "no services: seed first"
        self.base, self.service_id, self.rate = base, int(row[0]), rate
        token = httpx.post(
            f"{base}/api/auth/token/", json={"username": row[1], "password": seed_services.PASSWORD}, timeout=30
        ).json()["access"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.writes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            while not self._stop.wait(1 / self.rate):
                body = {"description": f"Правка номер {self.writes}"}
                response = client.patch(f"/api/v1/services/{self.service_id}/", json=body)
                self.writes += 1
                self.failures += response.status_code != 200

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def some_service_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM services WHERE is_active ORDER BY id LIMIT 1 OFFSET 5000").fetchone()
    assert row is not None, "no services: seed first"
    return int(row[0])


@contextmanager
def seeded_database(url: str | None, count: int) -> Iterator[tuple[str, str]]:
    """(URL, how it was seeded): the given database as it is, or a fresh one seeded now."""
    if url:
        yield url, "reused, seeded earlier by seed_services.py"
        return
    with fresh_database("ugc_bench_listing") as fresh:
        print(f"seeding {count} services...", file=sys.stderr)
        seconds = seed_services.seed(fresh, count=count, creators=500, batch=1000)
        with psycopg.connect(fresh, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE services")  # what autovacuum does after a bulk load
        yield fresh, f"fresh; {count:,} services seeded through the application in {seconds:.0f} s"


def measure_api(
    url: str, cases: list[Case], connections: tuple[int, ...], duration: float, engine: str, write_rate: float
) -> tuple[list[tuple[str, Result]], str]:
    """Every case at every concurrency, then the target again under writes; the results and the writes' summary."""
    results: list[tuple[str, Result]] = []
    with ugc_server(url) as (base, pid, _log, _helpers):
        runs: list[tuple[Case, int, float | None]] = [(case, conns, None) for case in cases for conns in connections]
        runs += [(cases[0], conns, write_rate) for conns in connections]
        written: list[str] = []
        for case, conns, rate in runs:
            scenario = Scenario("GET", case.path)
            loadgen.run(base, scenario, connections=conns, duration=1, engine=engine, quiet=False)
            label = case.label if rate is None else f"{case.label}, while {rate:g} edits/s"
            with ExitStack() as stack:
                writer = stack.enter_context(Writer(base, url, rate)) if rate else None
                result = loadgen.run(
                    base, scenario, connections=conns, duration=duration, engine=engine, server_pid=pid, quiet=not rate
                )
            if writer is not None:
                written.append(f"{writer.writes} edits ({writer.failures} failed) at {conns} connections")
            results.append((label, result))
            print(f"  {label} c={conns}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms", file=sys.stderr)
    return results, "; ".join(written)


def report(
    *,
    seeded: str,
    engine: str,
    duration: float,
    ceiling: dict[int, Result],
    with_log: Result,
    cases: list[Case],
    api: list[tuple[str, Result]],
    words: dict[str, tuple[int, int]],
    target: str,
    costs: list[QueryCost],
    background: float,
    writes: str,
) -> str:
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"## Services listing - {now}",
        "",
        f"`python bench/run_listing.py` - {CORES} cores; PostgreSQL database {seeded}. Server: `ugc serve`, "
        f"1 uvicorn worker (uvloop, httptools, access log off: the UGC_ACCESS_LOG default). "
        f"Load: {engine}, one thread, on the same cores. "
        f"{duration:g} s per measurement after a 1 s warm-up. CPU busy before the run (other processes): "
        f"{background:.2f} cores.",
        "",
        f"Cases (price range {PRICE_RANGE[0]}-{PRICE_RANGE[1]} for the searches):",
        "",
        *(f"* {case.label}: `{case.path}`" for case in cases),
        "",
        "Search words (services matching / of which in the price range):",
        ", ".join(f"`{w}` {n:,} / {r:,}" for w, (n, r) in words.items()) + ".",
        "",
        "### Same run: hello-world ceiling and the API",
        "",
        ceilings.RESULT_HEADER,
        *(ceilings.result_row(f"hello-world ({engine})", r) for r in ceiling.values()),
        ceilings.result_row(f"hello-world + access log ({engine})", with_log),
        *(ceilings.result_row(label, r) for label, r in api),
        "",
        f"Edits made during the under-writes runs: {writes or 'none'}. Each moves the listing projection's "
        "position, after which the next listing reads its page and counts its total again instead of sending "
        "the remembered answer (api/listing.py; concurrent misses of one URL share one read).",
        "",
        "### Against the targets",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
    ]
    by = {(label, r.connections): r for label, r in api}
    for conns, hello in ceiling.items():
        r = by.get((target, conns))
        if r is None:
            continue
        if conns == 16:
            lines.append(f"| {target}, p99 at 16 connections | {r.p99_ms:.1f} ms | < 50 ms |")
        lines.append(
            f"| {target} ÷ hello-world, {conns} connections | {r.rps / hello.rps:.3f} "
            f"({r.rps:,.0f} / {hello.rps:,.0f}) | ≥ 0.333 |"
        )
        floor = by.get(("detail (primary key)", conns))
        if floor is not None:
            lines.append(
                f"| detail (primary key) ÷ hello-world, {conns} connections | "
                f"{floor.rps / hello.rps:.3f} | (the API's per-request floor) |"
            )
    lines += ["", "### The statements of a search, each alone (50 runs, one connection, custom plans)", ""]
    for cost in costs:
        lines += [
            f"{cost.label} - median {cost.median_ms:.2f} ms, p90 {cost.p90_ms:.2f} ms:",
            "",
            "```sql",
            cost.sql,
            "```",
            "",
            "```",
            cost.plan,
            "```",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a database seeded earlier by seed_services.py (default: seed one)")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per API measurement")
    parser.add_argument("--ceiling-duration", type=float, default=5.0, help="seconds per hello-world measurement")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--engine", choices=("wrk", "python"), default=loadgen.DEFAULT_ENGINE)
    parser.add_argument("--word", default="косметики", help="the target's search word")
    parser.add_argument("--write-rate", type=float, default=20.0, help="edits/s in the under-writes case")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args()
    connections = tuple(int(c) for c in args.connections.split(","))

    background = wait_for_quiet()
    print("hello-world ceiling...", file=sys.stderr)
    ceiling = {c: ceilings.hello_world(c, args.ceiling_duration, engine=args.engine) for c in connections}
    with_log = ceilings.hello_world(max(connections), args.ceiling_duration, engine=args.engine, access_log=True)
    with ExitStack() as stack:
        url, seeded = stack.enter_context(seeded_database(args.database_url, args.count))
        rare, common = "фотосъёмка косметики", "видео"
        words = {w: selectivity(url, w) for w in (rare, args.word, common)}
        target = "listing: search + prices, page 2"
        cases = [
            Case(target, listing_path(args.word, page=2)),
            Case("listing: rare phrase, page 2", listing_path(rare, page=2)),
            Case("listing: common word, page 2", listing_path(common, page=2)),
            Case("listing: no filters, page 1", listing_path(None, prices=False)),
            Case("detail (primary key)", f"/api/v1/services/{some_service_id(url)}/"),
            Case("healthz (no DB)", "/healthz/"),
        ]
        print("API...", file=sys.stderr)
        api, writes = measure_api(url, cases, connections, args.duration, args.engine, args.write_rate)
        wait_for_quiet()
        costs = query_costs(url, [args.word, rare])
    section = report(
        seeded=seeded,
        engine=args.engine,
        duration=args.duration,
        ceiling=ceiling,
        with_log=with_log,
        cases=cases,
        api=api,
        words=words,
        target=target,
        costs=costs,
        background=background,
        writes=writes,
    )
    print(section)
    if not args.no_record:
        record(section, "listing")


if __name__ == "__main__":
    main()
