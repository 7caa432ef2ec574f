"""Catch-up of every read model by one `ugc project` against two sharing the leases, on one log
(PostgreSQL), and the connections the production layout holds.

A fresh database gets the demo world (`ugc seed --demo`) and `--orders` orders through the domain
(bench/seed_orders.py). Then, for 1 and for 2 projector processes in turn: every read model is
emptied and rewound to 0 (one transaction, as `ugc rebuild` does), the projectors start, and the
clock runs until every read model's position reaches its log's head. The figure is events applied
per second (events of the logs x read models following them / seconds), against the same run's
PostgreSQL INSERT+COMMIT ceiling (bench/ceilings.py). Then `ugc serve --workers 2` and two
`ugc project` run side by side (UGC_PROJECTIONS=external) under a few requests, and the peak of
`pg_stat_activity` for the database is printed.

Usage:  .venv/bin/python bench/leases_catchup.py [--orders 20000] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from ceilings import hello_world, pg_insert
from common import free_port, fresh_database, record
from seed_orders import Plan, seed

from projections.registry import all_projections
from projections.runner import ProjectionRunner
from readmodels.waiting import Progress
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import EventStores


def environment(url: str, var_dir: Path) -> dict[str, str]:
    return os.environ | {
        "UGC_DATABASE_URL": url,
        "UGC_VAR_DIR": str(var_dir),
        "UGC_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
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
    db, stores = Database(url), EventStores(url)
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


def rewind(url: str, env: dict[str, str]) -> int:
    """Empty and rewind every read model; the events the projectors will apply (log events x read models)."""
    settings = Settings.from_env(env)
    db, stores = Database(url), EventStores(url)
    try:
        read_models = [p for p in all_projections(settings) if p.read_model]
        runner = ProjectionRunner(db, stores, read_models, Progress())
        for projection in read_models:
            runner.reset(projection)
        heads = stores.heads()
        return sum(heads[application] for p in read_models for application in p.applications)
    finally:
        stores.close()
        db.close()


def caught_up(url: str, heads: dict[str, int]) -> bool:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT application, MIN(position) FROM projection_tracking WHERE read_model GROUP BY 1")
        return all(position >= heads[application] for application, position in rows.fetchall())


def heads_of(url: str) -> dict[str, int]:
    stores = EventStores(url)
    try:
        return stores.heads()
    finally:
        stores.close()


def catch_up(url: str, env: dict[str, str], processes: int, log_dir: Path) -> float:
    """Seconds for `processes` projectors, started together, to bring every read model to the heads."""
    heads = heads_of(url)
    started = time.monotonic()
    logs = [(log_dir / f"project-{processes}-{n}.log").open("wb") for n in range(processes)]
    running = [
        subprocess.Popen([sys.executable, "-m", "ugc.cli", "project"], env=env, stdout=log, stderr=subprocess.STDOUT)
        for log in logs
    ]
    try:
        while not caught_up(url, heads):
            if time.monotonic() - started > 1800:
                raise TimeoutError("the projectors did not catch up in 30 minutes")
            time.sleep(0.1)
        return time.monotonic() - started
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(30)
        for log in logs:
            log.close()


def connections(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


def production_layout(url: str, env: dict[str, str], log_dir: Path) -> int:
    """Peak connections of `ugc serve --workers 2` and two `ugc project` under a few requests."""
    import httpx

    port = free_port()
    log = (log_dir / "layout.log").open("wb")
    argv = [sys.executable, "-m", "ugc.cli"]
    running = [
        subprocess.Popen([*argv, "serve", "--port", str(port), "--workers", "2"], env=env, stdout=log, stderr=log),
        subprocess.Popen([*argv, "project"], env=env, stdout=log, stderr=log),
        subprocess.Popen([*argv, "project"], env=env, stdout=log, stderr=log),
    ]
    peak = 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the layout did not get ready")
                time.sleep(0.2)
            for n in range(60):
                client.get("/api/v1/services/")
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
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    began = datetime.now(UTC)
    with fresh_database("ugc_bench_leases") as url, tempfile.TemporaryDirectory() as tmp:
        env = environment(url, Path(tmp))
        prepare(url, env, args.orders)
        figures = {}
        for processes in (1, 2):
            applied = rewind(url, env)
            seconds = catch_up(url, env, processes, Path(tmp))
            figures[processes] = (applied, seconds)
            print(f"{processes} projector(s): {applied} events in {seconds:.1f} s", file=sys.stderr)
        peak = production_layout(url, env, Path(tmp))
        insert = pg_insert(url, duration=3.0)
        hello = hello_world(16, 3.0, engine="python")
    hello_rps = hello.requests / hello.seconds
    lines = [
        f"## Leases: catch-up by 1 vs 2 projectors, connections ({began:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `.venv/bin/python bench/leases_catchup.py --orders {args.orders}`. Machine: 2 cores, shared",
        "with other sessions' work while it ran (figures are indicative).",
        "",
        "| projectors | events applied (log x read models) | seconds | events/s | ratio to INSERT ceiling |",
        "|---:|---:|---:|---:|---:|",
    ]
    for processes, (applied, seconds) in figures.items():
        rate = applied / seconds
        lines.append(f"| {processes} | {applied:,} | {seconds:.1f} | {rate:,.0f} | {rate / insert.tps:.2f} |")
    one, two = (figures[n][0] / figures[n][1] for n in (1, 2))
    lines += [
        "",
        f"Two projectors against one: **{two / one:.2f}x**.",
        "",
        f"Peak connections of `ugc serve --workers 2` + two `ugc project` (external projections): **{peak}**",
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
