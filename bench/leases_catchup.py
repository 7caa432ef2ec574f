"""Catch-up by one `ugc project` against two sharing the leases, on one log (PostgreSQL), and the
connections the production layout holds against the documented budget.

A fresh database gets the demo world (`ugc seed --demo`) and `--orders` orders through the domain
(bench/seed_orders.py). Two sets are caught up, each by 1 and then by 2 projector processes started
together: the four read models that follow the orders log (FOUR: the processes run with
`--only` those), then every read model. Before each run the set's read models are emptied and
rewound to 0 (one transaction), and their tables truncated; the clock runs from the processes' start
until each of them reaches its logs' heads. The figure is events applied per second (events of the
logs x read models following them / seconds), against the same run's PostgreSQL INSERT+COMMIT
ceiling (bench/ceilings.py); then the same rate counted only from the moment every process held
leases of the set (each started, the balance moved its share to it), which leaves each process's
start out; beside them the CPU the projectors and PostgreSQL used (cores), what the rest of the
machine used meanwhile, and how the leases were split when the set was caught up.
Then `ugc serve --workers 4` and two `ugc project` run side by side (UGC_PROJECTIONS=external)
under a few requests, and the peak of `pg_stat_activity` for the database is set against the
budget of README "Connection budget" for that layout.

`--costs` first times, in this process (no leases), reading and decoding the orders log alone, and
catching up each of the four alone, each side of the lease split, and the four together: what
projections/registry.py's LEASE_WEIGHTS should say, and the most two projectors could gain if
neither slowed the other (the four together ÷ the slower side).

Usage:  .venv/bin/python bench/leases_catchup.py [--orders 20000] [--repeat 1] [--costs] [--patience S]
        [--without-only] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import common
import psycopg
from ceilings import hello_world, pg_insert
from common import DATA_KEY, cpu_snapshot, cpu_used, free_port, fresh_database, machine_cpu, postgres_database, record
from seed_orders import Plan, seed

from projections.base import Projection
from projections.leasing import assign
from projections.registry import LEASE_WEIGHTS, all_projections
from projections.runner import BATCH_SIZE, ProjectionRunner
from readmodels import tracking
from readmodels.waiting import Progress
from ugc.config import Settings, pool_sizes
from ugc.platform.database import Database
from ugc.platform.leases import Member
from ugc.platform.store import EventStores, Orders

# The read models that follow the orders log, the one that grows with the traffic.
FOUR = ("orders", "notifications", "creator_stats", "listings")
WORKERS = 4
PROJECTORS = 2


def environment(url: str, var_dir: Path) -> dict[str, str]:
    return os.environ | {
        "UGC_DATABASE_URL": url,
        "UGC_VAR_DIR": str(var_dir),
        "UGC_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "UGC_DATA_KEY": DATA_KEY,
        "UGC_ARGON2_TIME_COST": "1",
        "UGC_ARGON2_MEMORY_KIB": "8192",
        "UGC_PROJECTIONS": "external",
    }


def ugc(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "ugc.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def prepare(url: str, env: dict[str, str], orders: int) -> None:
    """The demo world, projected, then `orders` orders appended to the orders log."""
    ugc("seed", "--demo", env=env)
    settings = Settings.from_env(env)
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    try:
        runner = ProjectionRunner(db, stores, [p for p in all_projections(settings) if p.read_model], Progress())
        runner.register()
        runner.catch_up()
        with db.read() as cur:
            buyers = [r["id"] for r in cur.execute("SELECT id FROM users WHERE is_verified ORDER BY id").fetchall()]
            services = [r["id"] for r in cur.execute("SELECT id FROM services WHERE is_active ORDER BY id").fetchall()]
        creators = {r["creator_user_id"] for r in db.snapshot(("SELECT creator_user_id FROM services", ()))[0]}
        buyers = [b for b in buyers if b not in creators] or buyers
        seeded = seed(stores, db, Plan(buyers, services), count=orders)
        print(f"seeded {seeded.orders} orders, {seeded.events} events", file=sys.stderr)
    finally:
        stores.close()
        db.close()


def read_models(env: dict[str, str], names: Sequence[str] | None) -> list[Projection]:
    return [p for p in all_projections(Settings.from_env(env)) if p.read_model and (names is None or p.name in names)]


def emptied(db: Database, projections: Sequence[Projection]) -> None:
    """Rewind `projections` to 0 and TRUNCATE their tables, in one transaction: every catch-up starts
    from new, empty tables and indexes, as a rebuild's does (projections/bluegreen.py). Emptied by
    DELETE (`ProjectionRunner.reset`), each run would insert beside the dead rows of the runs before
    it (the server's autovacuum may be off, as here): the same keys again, in unique indexes that
    grow with every run. VACUUM after the DELETE leaves the indexes' pages, which made the planner
    scan a small table rather than read its bloated index, and keep that plan as the table grew
    (20,000 orders: the four caught up in 21-24 s instead of 5)."""
    tables = sorted({table for projection in projections for table in projection.tables})
    with db.transaction(write=True) as cur:
        cur.execute(f"TRUNCATE {', '.join(tables)}")
        for projection in projections:
            tracking.reset(cur, projection.name)


def rewind(url: str, env: dict[str, str], names: Sequence[str] | None) -> int:
    """Empty and rewind the read models `names` (all: None); the events to apply (log events x read models)."""
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    try:
        chosen = read_models(env, names)
        emptied(db, chosen)
        heads = stores.heads()
        return sum(heads[application] for p in chosen for application in p.applications)
    finally:
        stores.close()
        db.close()


def standing(
    conn: psycopg.Connection[tuple[object, ...]], names: Sequence[str], heads: dict[str, int]
) -> tuple[int, int]:
    """Events `names` have still to apply (log x read models), and how many processes hold their leases."""
    rows = conn.execute(
        "SELECT application, position FROM projection_tracking WHERE projection = ANY(%s)", (list(names),)
    ).fetchall()
    held = conn.execute(
        "SELECT COUNT(DISTINCT holder) FROM leases WHERE name = ANY(%s) AND holder IS NOT NULL", (list(names),)
    ).fetchone()
    left = sum(max(0, heads[str(application)] - int(str(position))) for application, position in rows)
    return left, int(str(held[0])) if held else 0


def heads_of(url: str) -> dict[str, int]:
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        return stores.heads()
    finally:
        stores.close()


def lease_split(url: str, names: Sequence[str]) -> list[list[str]]:
    """The leases of `names` each holder has now, one list per holder (the longest first)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT name, holder FROM leases WHERE name = ANY(%s)", (list(names),)).fetchall()
    by_holder: dict[str, list[str]] = {}
    for name, holder in rows:
        by_holder.setdefault(holder or "nobody", []).append(name)
    return sorted((sorted(held) for held in by_holder.values()), key=lambda held: (-len(held), held))


@dataclass(frozen=True)
class CatchUp:
    seconds: float  # from the processes' start (imports, migration, leases included)
    # Events applied per second from the moment every process held leases of the set (each has
    # started, and the balance has moved its share to it) to the end: the processes working together.
    shared_rate: float | None  # None: caught up before that moment
    projector_cores: float  # CPU of the projector processes / seconds
    postgres_cores: float  # CPU of PostgreSQL's backends for the database / seconds
    other_cores: float  # the rest of the machine meanwhile (other people's work)
    split: list[list[str]]  # the set's leases per holder when it was caught up


def catch_up(url: str, env: dict[str, str], processes: int, names: Sequence[str], only: bool, log_dir: Path) -> CatchUp:
    """`processes` projectors (running only `names` if `only`), started together, bring `names` to the heads."""
    heads = heads_of(url)
    database = url.rsplit("/", 1)[1]
    argv = [sys.executable, "-m", "ugc.cli", "project", *(["--only", *names] if only else [])]
    logs = [(log_dir / f"project-{len(names)}-{processes}-{n}.log").open("ab") for n in range(processes)]
    busy, before = machine_cpu()[0], cpu_snapshot()
    mine = os.times()
    started = time.monotonic()
    running = [subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    try:
        shared: tuple[float, int] | None = None  # when every process held leases, and the events left then
        with psycopg.connect(url, autocommit=True) as conn:  # one connection: a new one each poll forks a backend
            while True:
                left, holders = standing(conn, names, heads)
                if shared is None and holders >= processes:
                    shared = (time.monotonic(), left)
                if not left:
                    break
                if time.monotonic() - started > 1800:
                    raise TimeoutError("the projectors did not catch up in 30 minutes")
                time.sleep(0.02)
        ended = time.monotonic()
        shared_rate = shared[1] / (ended - shared[0]) if shared is not None and shared[1] else None
        split = lease_split(url, names)
        used = cpu_used(before, cpu_snapshot())
        busy = machine_cpu()[0] - busy
        # While the backends live: their process titles name the database.
        postgres = sum(
            cpu for pid, (name, cpu) in used.items() if name == "postgres" and postgres_database(pid) == database
        )
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(30)
        for log in logs:
            log.close()
    pids = {process.pid for process in running}
    projectors = sum(cpu for pid, (_, cpu) in used.items() if pid in pids)
    others = busy - projectors - postgres - (sum(os.times()[:2]) - sum(mine[:2]))
    seconds = ended - started
    return CatchUp(seconds, shared_rate, projectors / seconds, postgres / seconds, others / seconds, split)


def lease_sides() -> list[tuple[str, ...]]:
    """FOUR as two projectors split them by LEASE_WEIGHTS (projections/leasing.py `assign`)."""
    weights = {name: LEASE_WEIGHTS.get(name, 1.0) for name in FOUR}
    owners = assign({member: Member(weights, {}) for member in ("a", "b")})
    return [tuple(name for name in FOUR if owners[name] == member) for member in ("a", "b")]


def side_label(side: Sequence[str]) -> str:
    return f"one side of the split: {' + '.join(side)}"


def costs(url: str, env: dict[str, str]) -> list[tuple[str, float]]:
    """Seconds, in this process (no leases), to read and decode the orders log alone, then to catch
    up from 0 each of FOUR alone, each side of the lease split, and the four together."""
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    try:
        started = time.monotonic()
        orders, after = stores[Orders.name], 0
        while batch := orders.recorder.select_notifications(start=after, limit=BATCH_SIZE, inclusive_of_start=False):
            for notification in batch:
                orders.mapper.to_domain_event(notification)
            after = batch[-1].id
        found = [("the orders log read and decoded", time.monotonic() - started)]
        sides = [(side_label(side), side) for side in lease_sides()]
        for label, names in [*((name, (name,)) for name in FOUR), *sides, (" + ".join(FOUR), FOUR)]:
            chosen = read_models(env, names)
            emptied(db, chosen)
            runner = ProjectionRunner(db, stores, chosen, Progress())
            started = time.monotonic()
            for application in sorted({a for p in chosen for a in p.applications}):
                following = [p for p in chosen if application in p.applications]
                while runner._apply(application, following):  # the four share each batch, as `ugc project` runs them
                    pass
            found.append((label, time.monotonic() - started))
        return found
    finally:
        stores.close()
        db.close()


def connections(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


def budget(env: dict[str, str]) -> int:
    """README "Connection budget" for `serve --workers WORKERS` and PROJECTORS `ugc project`."""
    sizes = pool_sizes(env)
    return WORKERS * sizes.per_worker + PROJECTORS * sizes.per_projector


def production_layout(url: str, env: dict[str, str], log_dir: Path) -> int:
    """Peak connections of `ugc serve --workers 4` and two `ugc project` under a few requests."""
    import httpx

    port = free_port()
    log = (log_dir / "layout.log").open("wb")
    argv = [sys.executable, "-m", "ugc.cli"]
    running = [
        subprocess.Popen(
            [*argv, "serve", "--port", str(port), "--workers", str(WORKERS)], env=env, stdout=log, stderr=log
        ),
        *(subprocess.Popen([*argv, "project"], env=env, stdout=log, stderr=log) for _ in range(PROJECTORS)),
    ]
    peak = 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the layout did not get ready")
                time.sleep(0.2)
            for n in range(120):
                client.get("/api/v1/services/")
                client.get("/api/v1/categories/")
                client.post(
                    "/api/auth/register/",
                    json={"username": f"layout{n}", "email": f"layout{n}@example.com", "password": "long-enough"},
                )
                peak = max(peak, connections(url))
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(30)
        log.close()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each catch-up; the fastest is kept")
    parser.add_argument(
        "--costs",
        action="store_true",
        help="also, in this process: the log read alone, each of the four, each side of the split, the four",
    )
    parser.add_argument(
        "--without-only",
        action="store_true",
        help="the projectors run every projection, only the set is rewound (code before `ugc project --only`)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=common.QUIET_LIMIT,
        help="seconds the hello-world ceiling waits for a quiet machine (one attempt when lowered)",
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    if args.patience < common.QUIET_LIMIT:
        common.QUIET_LIMIT, common.ATTEMPTS = args.patience, 1
    began = datetime.now(UTC)
    sets: list[tuple[str, Sequence[str] | None]] = [
        (f"the {len(FOUR)} read models of the orders log", FOUR),
        ("every read model", None),
    ]
    with fresh_database("ugc_bench_leases") as url, tempfile.TemporaryDirectory() as tmp:
        env = environment(url, Path(tmp))
        prepare(url, env, args.orders)
        alone = costs(url, env) if args.costs else []
        figures: dict[tuple[str, int], tuple[int, CatchUp]] = {}
        for label, names in sets:
            chosen = [p.name for p in read_models(env, names)]
            for _ in range(args.repeat):
                for processes in (1, 2):
                    applied = rewind(url, env, names)
                    run = catch_up(url, env, processes, chosen, names is not None and not args.without_only, Path(tmp))
                    print(
                        f"{label}, {processes} projector(s): {applied} events in {run.seconds:.2f} s {run.split}",
                        file=sys.stderr,
                    )
                    best = figures.get((label, processes))
                    if best is None or run.seconds < best[1].seconds:
                        figures[(label, processes)] = (applied, run)
        peak = production_layout(url, env, Path(tmp))
        insert = pg_insert(url, duration=3.0)
        hello = hello_world(16, 3.0, engine="python")
    hello_rps = hello.requests / hello.seconds
    lines = [
        f"## Leases: catch-up by 1 vs 2 projectors, connections ({began:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `.venv/bin/python bench/leases_catchup.py --orders {args.orders} --repeat {args.repeat}"
        f"{' --costs' if args.costs else ''}{' --without-only' if args.without_only else ''}"
        f" --patience {args.patience:g}`.",
        f'Machine: 2 cores; "others" is what the rest of the machine used meanwhile (from '
        f"{common.QUIET_THRESHOLD} cores it was shared with other work, and the figures are indicative).",
        f"Lease weights (projections/registry.py): {LEASE_WEIGHTS}.",
        "",
        "| set | projectors | events applied (log x read models) | seconds from start | events/s (from start) "
        "| ratio to INSERT ceiling | events/s once every process held its share "
        "| cores: projectors / PostgreSQL / others "
        "| leases per process at the end |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for (label, processes), (applied, run) in figures.items():
        rate = applied / run.seconds
        split = " \\| ".join(", ".join(held) for held in run.split)
        lines.append(
            f"| {label} | {processes} | {applied:,} | {run.seconds:.2f} | {rate:,.0f} "
            f"| {rate / insert.tps:.2f} | {'–' if run.shared_rate is None else f'{run.shared_rate:,.0f}'} "
            f"| {run.projector_cores:.2f} / {run.postgres_cores:.2f} / {run.other_cores:.2f} | {split} |"
        )
    lines.append("")
    for label, _ in sets:
        one, two = (figures[(label, n)][1] for n in (1, 2))
        together = (
            f"{two.shared_rate / one.shared_rate:.2f}x"
            if one.shared_rate is not None and two.shared_rate is not None
            else "– (caught up before every process held its share)"
        )
        lines.append(
            f"Two projectors against one, {label}: **{one.seconds / two.seconds:.2f}x** from start, "
            f"{together} once every process held its share."
        )
    if alone:
        seconds = dict(alone)
        all_four, slower = seconds[" + ".join(FOUR)], max(seconds[side_label(side)] for side in lease_sides())
        lines += [
            "",
            "In one process, no leases (seconds): "
            + "; ".join(f"{name} {took:.2f}" for name, took in alone)
            + ". What two projectors could gain at most, each side of the split running as fast as it "
            f"does alone (the four together ÷ the slower side): {all_four / slower:.2f}x; each side "
            "reads and decodes the whole log, which one process does once for the four.",
        ]
    lines += [
        "",
        f"Peak connections of `ugc serve --workers {WORKERS}` + {PROJECTORS} `ugc project` (external projections): "
        f"**{peak}**, against the README's budget for that layout, {budget(env)} (defaults), "
        "of PostgreSQL's default 100.",
        "",
        f"Ceilings of the same run: PostgreSQL INSERT+COMMIT (8 threads) {insert.tps:,.0f} tx/s;",
        f"hello-world (python client, 16 connections, 1 worker) {hello_rps:,.0f} req/s.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record(text, "leases-catchup", began)


if __name__ == "__main__":
    main()
