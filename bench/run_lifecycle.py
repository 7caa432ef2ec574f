"""Follow-up order commands and reviews under load: what issue 15 asks `bench/` to show, in one run.

`ugc serve --workers 2` on a fresh PostgreSQL database with a `ugc project` process beside it
(DESIGN.md's production layout), and, in this order:

1. the services listing (search + price range, page 2; loadgen, 16 connections) over 20 creators
   with 500 services each (plus the two below), then a write phase of `--reviews` reviewed orders
   spread over those 20 creators (appended to the orders log in batches, as seed_orders.py does,
   and applied by the projection process), then the same listing again: after / before;
2. review latency (p50, p99) of a creator with 10 services and one with 10,000, one client doing
   whole lifecycles on each in turn: 10,000 / 10;
3. at 16 and then 64 connections, `--rounds` times each: `POST /api/v1/orders/` alone (loadgen),
   then whole lifecycles: place -> deliver -> approve -> review, the issue's lifecycle (a pending
   order may be delivered: ugc/orders.py RULES), each step an HTTP request of the acting party. The
   target is lifecycles/s >= 1/4 of placing's req/s, that is the three follow-up commands cost no
   more than placing; each round's ratio compares two windows seconds apart, and the rounds' median
   is the figure (the machine's speed drifts by ±20 % over minutes). `--accept` walks accept too (5
   requests a lifecycle: then the same target asks each step to cost 4/5 of a placing);
4. each step alone (step_costs.py), at each of `--step-connections` (16 and 64, the concurrencies of
   3): `--step-orders` orders taken through one step after the other, in cohorts whose windows
   alternate the steps (the machine's drift then weighs on every step alike), the CPU of every
   process per request, against placing's, and the lifecycles ÷ placing those costs make; beside
   them what each request asked of the database (commits, rows written, buffers touched), which
   the machine's drift does not move;

beside the ceilings of ceilings.py measured in the same run (hello-world HTTP, raw PostgreSQL
single-row INSERT+COMMIT). Autovacuum is left as the server has it (reported). Prints markdown and
writes it to a dated file in bench/results/ (common.record).

`--lifecycles-only` measures 3 and 4 alone (20 creators with 100 services each), for profiling.

Usage:  .venv/bin/python bench/run_lifecycle.py [--reviews 10000] [--duration 10] [--rounds 3] [--accept] [--no-record]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ceilings
import common
import httpx
import loadgen
import psycopg
import seed_orders
import seed_services
import step_costs
import uvloop
from common import (
    DATA_KEY,
    cpu_snapshot,
    cpu_used,
    fresh_database,
    machine_cpu,
    process_cpu_seconds,
    record,
    wait_for_quiet,
)
from loadgen import Result, Scenario
from run_auth import ugc_server
from run_listing import listing_path
from run_orders import (
    LIFECYCLE_RAMP,
    STEPS,
    Cast,
    LifecycleRun,
    Party,
    PlaceRun,
    build_cast,
    lifecycle_rows,
    lifecycles,
    measure_placing,
    pct,
    refreshed,
    table_stats,
    wait_for_connections,
)

from readmodels.tracking import lagging
from ugc.accounts import User
from ugc.clock import SystemClock
from ugc.ids import aggregate_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.services import Service

WORKERS = 2
LISTING_WORD = "косметики"


# What a server worker's command line holds (uvicorn spawns its workers through multiprocessing);
# the master's other child is multiprocessing's resource tracker.
WORKER_COMMAND = "multiprocessing.spawn import spawn_main"


def children(pid: int) -> list[int]:
    """The server's worker processes (uvicorn's children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pids: list[int]) -> float:
    return sum(process_cpu_seconds(p) for p in pids)


# --- seeding straight into the logs -------------------------------------------------------------


def seed_services_of(url: str, counts: list[tuple[Party, int]]) -> float:
    """Append services for cast creators (their profiles exist already); the seconds it took."""
    began = time.monotonic()
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    try:
        rng = random.Random(15)
        categories = seed_services.category_numbers(stores)
        for party, count in counts:
            creator = seed_services.Creator(party.user_id, party.profile_id, party.username)
            for start in range(0, count, 1000):
                made = seed_services.build_services(rng, db, [creator], categories, min(1000, count - start))
                stores.catalog.save(*made)
                party.services += [s.number for s in made]
        catch_up(db, {"catalog": stores.catalog.recorder.max_notification_id() or 0})
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE services")
    finally:
        stores.close()
        db.close()
    return time.monotonic() - began


def wait_for_projector(url: str, limit: float = 120.0) -> None:
    """Until the `ugc project` beside the server holds the orders read model's lease (ugc/platform/leases.py):
    before that, every command's read-your-writes wait would time out on a busy machine (503). (A
    granted advisory lock, what this looked for before, shows only while a batch is in flight.)"""
    deadline = time.monotonic() + limit
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            try:
                row = conn.execute("SELECT count(*) FROM leases WHERE name = 'orders' AND holder IS NOT NULL "
                                   "AND expires_at > extract(epoch from clock_timestamp())").fetchone()
            except psycopg.errors.UndefinedTable:  # the projector has not made its tables yet
                row = None
            if row and row[0]:
                return
            time.sleep(0.5)
    raise TimeoutError(f"no projection runner holds the orders lease after {limit:.0f} s")


def catch_up(db: Database, head: dict[str, int], timeout: float = 1800.0) -> None:
    began = time.monotonic()
    while behind := lagging(db, head):
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"read models still behind after {timeout:.0f} s: {behind} < {head}")
        time.sleep(0.2)


def settled(url: str) -> float:
    """Seconds until the read models have applied the whole orders log as it stands now."""
    began = time.monotonic()
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    try:
        catch_up(db, {"orders": stores.orders.recorder.max_notification_id() or 0})
    finally:
        stores.close()
        db.close()
    return time.monotonic() - began


@dataclass(frozen=True)
class WritePhase:
    reviews: int
    append_seconds: float
    apply_seconds: float  # from the last append until the read models had applied everything
    services_table: dict[str, Any]


def write_reviews(url: str, cast: Cast, creators: list[Party], count: int, batch: int = 500) -> WritePhase:
    """`count` orders walked to reviewed, on services of `creators` in turn, appended `batch` per save."""
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    clock, rng = SystemClock(), random.Random(15)
    try:
        buyers: list[User] = [stores.accounts.repository.get(aggregate_id("user", b.user_id)) for b in cast.buyers]
        services: list[Service] = [stores.catalog.repository.get(aggregate_id("service", c.services[k]))
                    for k in range(5) for c in creators]
        began = time.monotonic()
        for start in range(0, count, batch):
            size = min(batch, count - start)
            numbers = db.next_numbers("order", size)
            deliveries, reviews = iter(db.next_numbers("delivery", size)), iter(db.next_numbers("review", size))
            orders = []
            for i, number in enumerate(numbers):
                order = seed_orders.place(number, buyers[(start + i) % len(buyers)],
                                          services[(start + i) % len(services)], rng, clock.now)
                seed_orders.walk(order, "reviewed", deliveries, reviews, rng, clock.now)
                orders.append(order)
            stores.orders.save(*orders)
        appended = time.monotonic() - began
        began = time.monotonic()
        catch_up(db, {"orders": stores.orders.recorder.max_notification_id() or 0})
        applied = time.monotonic() - began
    finally:
        stores.close()
        db.close()
    return WritePhase(count, appended, applied, table_stats(url, "services"))


# --- measurements --------------------------------------------------------------------------------


LISTING_TRIES = 4  # measurements of the listing until its connections are spread over both workers


def listing(base: str, pid: int, duration: float, engine: str, helpers: list[int]) -> Result:
    """The listing at 16 connections, spread over both workers.

    A worker's event loop accepts a burst of new connections all at once, so now and then one
    worker gets all 16 and the other idles: that run measures half the server, not the read model
    (08:42 and 10:41 today: after / before 0.79 and 0.87, every connection of the after run on one
    worker). Such a run is measured again, up to LISTING_TRIES times, so before and after compare alike.
    """
    scenario = Scenario("GET", listing_path(LISTING_WORD, page=2))
    loadgen.run(base, scenario, connections=16, duration=1, engine=engine, quiet=False)
    for attempt in range(1, LISTING_TRIES + 1):
        result = loadgen.run(base, scenario, connections=16, duration=duration, engine=engine, server_pid=pid,
                             helper_pids=helpers)
        share = workers_share(result)
        print(f"  listing: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, least busy worker "
              f"{share:.2f} of the busiest", file=sys.stderr)
        if share >= 0.5:
            break
        if attempt < LISTING_TRIES:
            print("  connections landed unevenly on the workers; measuring again", file=sys.stderr)
    return result


def workers_share(result: Result) -> float:
    """The least busy server worker's CPU over the busiest's during `result` (0: one did all the work)."""
    cores = [c for name, c in result.top_others if WORKER_COMMAND in name]
    return min(cores) / max(cores) if len(cores) >= 2 and max(cores) > 0 else 0.0


@dataclass(frozen=True)
class ReviewLatency:
    label: str
    services: int
    review: list[float]
    failures: int


async def review_latencies(base: str, buyers: list[Party], creators: list[tuple[str, Party]],
                           samples: int) -> list[ReviewLatency]:
    """One client: a whole lifecycle on each creator's first service in turn, the review timed."""
    delivery = "2099-01-01"
    timed: dict[str, list[float]] = {label: [] for label, _ in creators}
    failed = dict.fromkeys(timed, 0)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def post(path: str, party: Party, body: dict[str, Any], status: int) -> dict[str, Any]:
            response = await client.post(path, headers=party.auth, json=body)
            if response.status_code != status:
                raise LookupError(f"{path} -> {response.status_code}: {response.text[:200]}")
            answer: dict[str, Any] = response.json()
            return answer

        for k in range(samples):
            buyer = buyers[k % len(buyers)]
            for label, creator in creators:
                try:
                    order = (await post("/api/v1/orders/", buyer, {
                        "service_id": creator.services[0], "requirements": "Ролик", "delivery_date": delivery,
                        "selected_option_ids": []}, 201))["id"]
                    await post(f"/api/v1/orders/{order}/accept/", creator, {}, 200)
                    await post(f"/api/v1/orders/{order}/deliveries/", creator, {"message": "Готово", "file_ids": []},
                               201)
                    await post(f"/api/v1/orders/{order}/approve/", buyer, {}, 200)
                    t = time.perf_counter()
                    await post(f"/api/v1/orders/{order}/reviews/", buyer, {"rating": 1 + k % 5, "content": "Ок"}, 201)
                    timed[label].append(time.perf_counter() - t)
                except LookupError as error:
                    failed[label] += 1
                    print(f"  {label}: {error}", file=sys.stderr)
    return [ReviewLatency(label, len(creator.services), timed[label], failed[label]) for label, creator in creators]


def measure_lifecycles(base: str, server: list[int], cast: Cast, concurrency: int, duration: float,
                       walk: tuple[str, ...]) -> tuple[LifecycleRun, float]:
    """run_orders' lifecycles, with the CPU of every server process (the master, then its children:
    the workers and multiprocessing's resource tracker), and the least busy worker's CPU over the busiest's."""
    refreshed(base, [*cast.buyers, *cast.creators])
    wait_for_connections(12)
    uvloop.run(lifecycles(base, cast, concurrency, 1.0, walk))  # warm-up
    background = wait_for_quiet()
    snapshot, busy, cpu, wall = cpu_snapshot(), machine_cpu()[0], time.process_time(), time.monotonic()
    served = tree_cpu_seconds(server)
    workers = [child for child in server[1:] if WORKER_COMMAND.encode() in Path(f"/proc/{child}/cmdline").read_bytes()]
    worked = [process_cpu_seconds(worker) for worker in workers]
    seconds, done, started, failures, steps, whole = uvloop.run(
        lifecycles(base, cast, concurrency, duration, walk, ramp=LIFECYCLE_RAMP))
    wall = time.monotonic() - wall
    used = cpu_used(snapshot, cpu_snapshot())
    worked = [process_cpu_seconds(worker) - before for worker, before in zip(workers, worked, strict=True)]
    run = LifecycleRun(
        concurrency, seconds, done, started, failures, steps, whole,
        client_cores=(time.process_time() - cpu) / wall,
        server_cores=(tree_cpu_seconds(server) - served) / wall,
        postgres_cores=sum(c for name, c in used.values() if name == "postgres") / wall,
        machine_cores=(machine_cpu()[0] - busy) / wall,
        background=background)
    spread = min(worked) / max(worked) if max(worked, default=0) > 0 else 0.0
    print(f"  lifecycles c={concurrency}: {run.per_second:.1f}/s ({run.requests / run.seconds:.0f} req/s), "
          f"{sum(failures.values())} failures, least busy worker {spread:.2f} of the busiest", file=sys.stderr)
    return run, spread


# --- report --------------------------------------------------------------------------------------


def autovacuum(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    return str(row[0]) if row else "?"


@dataclass(frozen=True)
class ReviewCost:
    """Parts 1 and 2: the listing before and after the write phase, and review latency by catalogue size."""

    seeded: float
    before: Result
    writes: WritePhase
    after: Result
    latencies: list[ReviewLatency]


def review_sections(cost: ReviewCost) -> list[str]:
    small, big = cost.latencies
    rows = [f"| {r.label} | {r.services:,} | {len(r.review)} | {pct(r.review, 0.5):.1f} | {pct(r.review, 0.99):.1f} "
            f"| {r.failures} |" for r in cost.latencies]
    listing_rows = [ceilings.result_row(label, r) for label, r in (("before the reviews", cost.before),
                                                                    ("after the reviews", cost.after))]
    writes = cost.writes
    return [
        "### Services listing before and after the reviews (search + price range, page 2, 16 connections)", "",
        ceilings.RESULT_HEADER, *listing_rows, "",
        f"after / before: **{cost.after.rps / cost.before.rps:.2f}** (target ≥ 0.9; the least busy worker's CPU "
        f"over the busiest's: {workers_share(cost.before):.2f} before, {workers_share(cost.after):.2f} after, "
        f"measured again below 0.5). Write phase: {writes.reviews:,} "
        f"reviewed orders over 20 creators × 500 services, appended in {writes.append_seconds:.1f} s, applied by "
        f"the projections {writes.apply_seconds:.1f} s after the last append; `services` then: "
        f"{writes.services_table}", "",
        "### Review latency by the creator's catalogue size (one client, lifecycles in turn)", "",
        "| creator | services | reviews | p50 ms | p99 ms | failed |", "|---|---:|---:|---:|---:|---:|", *rows, "",
        f"p50 ratio 10,000 / 10: **{pct(big.review, 0.5) / max(pct(small.review, 0.5), 1e-9):.2f}**, p99 ratio "
        f"**{pct(big.review, 0.99) / max(pct(small.review, 0.99), 1e-9):.2f}** (target ≤ 1.2)", "",
    ]


def machine_state(background: float) -> str:
    """What the CPU other processes used before the run says of the figures."""
    shared = "shared with other work: figures are lower than on a quiet one"
    state = "quiet" if background < common.QUIET_THRESHOLD else shared
    return f"The machine (2 cores) was {state}; other load before the run: {background:.2f} cores."


def report(*, command: str, began: datetime, ceiling: ceilings.Ceilings, cost: ReviewCost | None,
           pairs: list[tuple[PlaceRun, LifecycleRun, float]], steps: dict[int, list[step_costs.StepCost]],
           walk: tuple[str, ...], vacuum: str, background: float) -> str:
    insert = ceiling.pg_insert.tps
    follow_ups = len(walk) - 1
    targets = []
    ratios: dict[int, list[float]] = {}
    for placing, run, spread in pairs:
        placed = placing.result
        rounds = ratios.setdefault(run.concurrency, [])
        rounds.append(run.per_second / placed.rps)
        targets.append(f"| {run.concurrency} | {len(rounds)} | {run.per_second:.1f} | {placed.rps:,.0f} | "
                       f"{run.per_second / placed.rps:.3f} | {run.requests / run.seconds / placed.rps:.2f} | "
                       f"{sum(run.failures.values()) + placed.errors} | {run.requests / run.seconds / insert:.3f} | "
                       f"{workers_share(placed):.2f} / {spread:.2f} |")
    medians = ", ".join(f"{c} clients **{statistics.median(r):.3f}**" for c, r in sorted(ratios.items()))
    seeded = "" if cost is None else f" Services seeded straight into the catalog log in {cost.seeded:.0f} s."
    return "\n".join([
        f"## Lifecycles, reviews and the listing, {began:%Y-%m-%d %H:%M} UTC", "",
        f"Command: `{command}`. PostgreSQL, `ugc serve --workers {WORKERS}` + `ugc project` (projections "
        f"external), autovacuum={vacuum} (untouched). {machine_state(background)}{seeded}", "",
        ceilings.markdown(ceiling), "",
        *(review_sections(cost) if cost is not None else []),
        "### Placing alone (`POST /api/v1/orders/`, loadgen)", "",
        "Each round measures placing and then the lifecycles at the same concurrency, back to back, so "
        "each ratio compares two windows a few seconds apart.", "",
        ceilings.RESULT_HEADER, *(ceilings.result_row("place", p.result) for p, _, _ in pairs), "",
        f"### Whole lifecycles ({' → '.join(walk)}, each step a request)", "",
        *lifecycle_rows([run for _, run, _ in pairs], walk), "",
        "| clients | round | lifecycles/s | placing req/s (same connections) | lifecycles ÷ placing | lifecycle "
        "requests/s ÷ placing req/s | errors | lifecycle requests/s ÷ raw INSERT+COMMIT | least busy worker ÷ "
        "busiest: placing / lifecycles |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *targets, "",
        "Both loads open their connections a few milliseconds apart (common.CONNECT_STAGGER), so both "
        "workers serve each (the last column: 0 would mean one worker took every connection).", "",
        f"Lifecycles ÷ placing, median of the rounds: {medians} (target ≥ 0.25).", "",
        f"Counted: a lifecycle is {len(walk)} requests ({', '.join(walk)}); lifecycles/s counts those whose last "
        f"step answered within the measurement window, which opens {LIFECYCLE_RAMP:.0f} s after the clients began "
        f"(the steady rate: lifecycles in flight as it opens count as they finish in it, as those in flight when "
        f"it closes do not). Target ≥ 1/4 of placing's req/s: the issue's \"the three "
        f"follow-up commands cost no more than placing\""
        + (" (its lifecycle is place → deliver → approve → review)." if follow_ups == 3 else
           f" was set for 4 requests; with {len(walk)} it asks each request to cost {4 / len(walk):.2f} of a "
           "placing (requests/s ÷ placing ≥ " f"{len(walk) / 4:.2f})."),
        "", *step_sections(steps),
    ])


def step_sections(steps: dict[int, list[step_costs.StepCost]]) -> list[str]:
    """Each step alone, a table per concurrency."""
    lines = []
    for connections, costs in sorted(steps.items()):
        lines += [f"### Each step alone ({connections} connections, {costs[0].requests:,} orders through one step "
                  f"after the other in {step_costs.COHORTS} cohorts, a window a step each; CPU until the read "
                  "models applied the step)", "",
                  *step_costs.rows(costs), "",
                  f"Lifecycles ÷ placing these costs make (placing's ÷ the sum of the steps'): "
                  f"**{step_costs.lifecycle_share(costs):.3f}**.", ""]
    return [*lines, "The issue's \"the three follow-up commands cost no more than placing\", measured directly: "
            "÷ placing's ≤ 1 for each follow-up step, and so a lifecycle share ≥ 1 ÷ the steps of a lifecycle."]


def review_cost(url: str, base: str, pid: int, cast: Cast, args: argparse.Namespace, others: list[int]) -> ReviewCost:
    """Parts 1 and 2; leaves the 20 creators with 500 services each, the last two with 10 and 10,000."""
    small, big = cast.creators[20], cast.creators[21]
    print("seeding services...", file=sys.stderr)
    seeded = seed_services_of(url, [*((c, 500) for c in cast.creators[:20]), (small, 10), (big, 10_000)])
    print("listing before the reviews...", file=sys.stderr)
    before = listing(base, pid, args.duration, args.engine, others)
    print(f"writing {args.reviews} reviews...", file=sys.stderr)
    writes = write_reviews(url, cast, cast.creators[:20], args.reviews)
    print("listing after the reviews...", file=sys.stderr)
    after = listing(base, pid, args.duration, args.engine, others)
    print("review latency by catalogue size...", file=sys.stderr)
    refreshed(base, [*cast.buyers, small, big])
    latencies = uvloop.run(review_latencies(base, cast.buyers, [("10 services", small), ("10,000 services", big)],
                                            args.samples))
    return ReviewCost(seeded, before, writes, after, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=10_000, help="reviewed orders in the write phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per loadgen measurement")
    parser.add_argument("--lifecycle-duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="placing then lifecycles, back to back, this many times at each concurrency")
    parser.add_argument("--step-orders", type=int, default=3000, help="orders taken through each step alone")
    parser.add_argument("--step-connections", type=int, nargs="+", default=[16, 64],
                        help="clients at once for each step alone, measured at each of these")
    parser.add_argument("--ceiling-duration", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=300,
                        help="reviews timed per creator (p99 of 100 is the second slowest: one outlier moves it)")
    parser.add_argument("--engine", choices=("wrk", "python"), default=loadgen.DEFAULT_ENGINE)
    parser.add_argument("--accept", action="store_true", help="walk accept too (place → accept → deliver → ...)")
    parser.add_argument("--lifecycles-only", action="store_true",
                        help="only placing and lifecycles (no listing, write phase or review latency)")
    parser.add_argument("--patience", type=float, default=common.QUIET_LIMIT,
                        help="seconds each measurement waits for a quiet machine; below the default, each is "
                             "measured once however disturbed (a machine shared with other work never goes quiet)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args()
    if args.patience < common.QUIET_LIMIT:
        common.QUIET_LIMIT, common.ATTEMPTS = args.patience, 1
    walk = STEPS if args.accept else tuple(step for step in STEPS if step != "accept")
    command = "python bench/run_lifecycle.py" + "".join(f" {a}" for a in sys.argv[1:])
    began = datetime.now(UTC)

    background = wait_for_quiet()
    print("ceilings...", file=sys.stderr)
    ceiling = ceilings.measure(duration=args.ceiling_duration, engine=args.engine, connections=(16, 64))
    wait_for_connections(60)
    with fresh_database("ugc_bench_lifecycle") as url, ugc_server(url, projections="external", workers=WORKERS) as (
            base, pid, log, helpers):
        workers = children(pid)
        wait_for_projector(url)
        print("cast through the API...", file=sys.stderr)

        async def cast_up() -> Cast:
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                return await build_cast(client, log.parent / "outbox", creators=22, buyers=64,
                                        services_per_creator=0)

        cast = uvloop.run(cast_up())
        others = [*workers, *helpers]
        if args.lifecycles_only:
            cost = None
            seed_services_of(url, [(c, 100) for c in cast.creators[:20]])
        else:
            cost = review_cost(url, base, pid, cast, args, others)
        # Lifecycles and placing on the 20 creators' services only (the two above keep their sizes).
        load_cast = Cast(cast.creators[:20], cast.buyers, cast.light)
        for creator in load_cast.creators:
            creator.services = creator.services[:100]
        print("POST /api/v1/orders/...", file=sys.stderr)
        pairs = []
        for concurrency in (16, 64):
            for _ in range(args.rounds):
                [placing] = measure_placing(base, pid, url, load_cast, connections=(concurrency,),
                                            duration=args.duration, engine=args.engine, helpers=others)
                # Let the read models apply placing's backlog first, or the lifecycles' waits would
                # measure that catch-up.
                print(f"read models caught up with placing in {settled(url):.1f} s; lifecycles...", file=sys.stderr)
                pairs.append((placing, *measure_lifecycles(base, [pid, *workers], load_cast, concurrency,
                                                          args.lifecycle_duration, walk)))
        steps: dict[int, list[step_costs.StepCost]] = {}
        for connections in args.step_connections:
            print(f"each step alone, {connections} connections...", file=sys.stderr)
            steps[connections] = step_costs.measure(base, url, load_cast, walk, workers=[pid, *workers],
                                                    projector=helpers, settle=lambda: settled(url),
                                                    orders=args.step_orders, connections=connections)
        vacuum = autovacuum(url)
    section = report(command=command, began=began, ceiling=ceiling, cost=cost, pairs=pairs, steps=steps,
                     walk=walk, vacuum=vacuum, background=background)
    print(section)
    if not args.no_record:
        record(section, "lifecycle", began)


if __name__ == "__main__":
    main()
