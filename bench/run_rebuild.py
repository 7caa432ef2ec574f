"""Blue/green rebuild throughput on PostgreSQL, beside a plain streaming read of the same log.

A fresh database gets the demo world (`ugc seed --demo`) and then `--orders` orders appended
through the domain (bench/seed_orders.py: about 2.6 events each, so the default 385,000 orders
make about 1,000,000 events in the orders log). Then, in the same run:

- raw read: `SELECT * FROM orders_events` streamed through a server-side cursor (rows/s): what
  reading the log costs with nothing done to it;
- read + decode: the same events as a replay reads them (projections/replay.py's `Reader`: batches
  of `BATCH_SIZE` from the event store, decoded by the mapper in a thread one batch ahead) with
  nothing applied (events/s): what a replay pays before any handler runs;
- rebuild: `projections.bluegreen.rebuild` of the `orders` projection (events/s), scratch schema,
  replay, indexes, switch, all included, no live runner running beside it; with the statements it
  ran per batch (every statement of the rebuild's transactions, DDL and switch included, over the
  replay's batches), this process's CPU and the CPU of the database's PostgreSQL backends;
- the ceilings of bench/ceilings.py (hello-world req/s, INSERT+COMMIT tx/s).

Before each measurement the script waits (at most `--patience` s) for a quiet machine; one that
started with other processes busy above 0.3 cores is marked disturbed.

Usage:  .venv/bin/python bench/run_rebuild.py [--orders 385000] [--batch 2000] [--patience S] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ceilings
import common
import psycopg
import seed_orders
from common import (
    DATA_KEY,
    VENV_BIN,
    cpu_snapshot,
    fresh_database,
    machine_cpu,
    postgres_database,
    record,
    wait_for_quiet,
)

from projections.bluegreen import rebuild
from projections.orders import OrdersProjection
from projections.registry import all_projections
from projections.replay import BATCH_SIZE, Reader
from projections.runner import ProjectionRunner
from readmodels.waiting import Progress
from ugc.config import Settings
from ugc.platform import dialect
from ugc.platform.database import Database
from ugc.platform.store import EventStores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=385_000, help="orders to append (about 2.6 events each)")
    parser.add_argument("--batch", type=int, default=2000, help="orders per append transaction while seeding")
    parser.add_argument("--no-record", action="store_true", help="print the run, write no bench/results file")
    parser.add_argument(
        "--patience",
        type=float,
        default=common.QUIET_LIMIT,
        help="seconds each ceiling waits for a quiet machine; below the default, each is measured once",
    )
    args = parser.parse_args()
    if args.patience < common.QUIET_LIMIT:
        common.QUIET_LIMIT, common.ATTEMPTS = args.patience, 1
    began = datetime.now(UTC)
    with fresh_database("ugc_bench_rebuild") as url:
        env = os.environ | {"UGC_DATABASE_URL": url, "UGC_DATA_KEY": DATA_KEY,
                            "UGC_ARGON2_TIME_COST": "1", "UGC_ARGON2_MEMORY_KIB": "8192"}
        subprocess.run([str(VENV_BIN / "ugc"), "seed", "--demo"], env=env, check=True, capture_output=True)
        db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
        try:
            runner = ProjectionRunner(db, stores, all_projections(Settings.from_env(env)), Progress())
            runner.register()
            runner.catch_up()  # the demo's users and services, to know their numbers
            with db.read() as cur:
                buyers = [
                    r["id"]
                    for r in cur.execute(
                        "SELECT id FROM users WHERE is_verified AND id NOT IN (SELECT user_id FROM creator_profiles)"
                    ).fetchall()
                ]
                services = [r["id"] for r in cur.execute("SELECT id FROM services WHERE is_active").fetchall()]
            started = time.monotonic()
            seed_orders.seed(
                stores,
                db,
                seed_orders.Plan(buyers=buyers, services=services),
                count=args.orders,
                batch=args.batch,
                progress=lambda s: (
                    print(f"  {s.orders:,} orders appended ({s.seconds:.0f} s)", file=sys.stderr)
                    if s.orders % (args.batch * 25) == 0
                    else None
                ),
            )
            seeding = time.monotonic() - started
            events = _count(url)
            print(f"{events:,} events in the orders log ({seeding:.0f} s to append)", file=sys.stderr)
            raw = _measured(lambda: _stream(url), args.patience)
            decoded = _measured(lambda: _decode(stores), args.patience)
            per_batch: list[int] = []  # statements between one replay batch's commit and the next's

            with _statements() as statements:

                def rebuilt_all() -> int:
                    def advanced(_: int) -> None:
                        per_batch.append(statements[0] - sum(per_batch))

                    rebuild(db, stores, [OrdersProjection()], advanced=advanced)
                    return events

                rebuilt = _measured(rebuilt_all, args.patience, database=url.rsplit("/", 1)[1])
        finally:
            stores.close()
            db.close()
    print("measuring the ceilings...", file=sys.stderr)
    limits = ceilings.measure(duration=3.0, connections=(16,))
    raw_rate, rate = raw.rate, rebuilt.rate
    section = "\n".join(
        [
            f"## Rebuild throughput — {began:%Y-%m-%d %H:%M} UTC",
            "",
            f"`python bench/run_rebuild.py --orders {args.orders} --patience {args.patience:g}` on "
            f"{platform.platform()}, Python {platform.python_version()}; PostgreSQL, no live runner beside the "
            f"rebuild; replay batches of {BATCH_SIZE:,} events.",
            "",
            "| measurement | events | seconds | events/s | ÷ raw read | other load before (cores) |",
            "|---|---:|---:|---:|---:|---:|",
            raw.row("raw read (`SELECT *` of orders_events, server-side cursor)", raw_rate),
            decoded.row(f"read + decode (replay's reader: by {BATCH_SIZE:,}, mapper, one batch ahead)", raw_rate),
            rebuilt.row("blue/green rebuild of `orders` (replay, indexes, switch)", raw_rate, bold=True),
            "",
            f"Rebuild: {statements[0]:,} statements, {len(per_batch):,} replay batches, "
            f"{statistics.median(per_batch[1:] or per_batch):.0f} statements in a batch (the median; the first "
            f"also made the scratch tables: {per_batch[0]}); this process {rebuilt.own_cpu:.1f} s of CPU, "
            f"the database's PostgreSQL backends {rebuilt.postgres_cpu:.1f} s; machine CPU busy "
            f"{rebuilt.machine_cores:.2f} of 2 cores.",
            f"Targets (issue 14): ≥ 20,000 events/s ({'met' if rate >= 20_000 else 'not met'}) and within 5× of "
            f"the raw read ({'met' if rate * 5 >= raw_rate else 'not met'}).",
            f"Rebuild ÷ INSERT+COMMIT ceiling: {rate / limits.pg_insert.tps:.2f} "
            f"(ceiling {limits.pg_insert.tps:,.0f} tx/s); hello-world {limits.hello[16].rps:,.0f} req/s at 16 "
            "connections.",
            "",
            ceilings.markdown(limits),
        ]
    )
    print(section)
    if not args.no_record:
        record(section, "rebuild", began)


@dataclass(frozen=True)
class Measured:
    count: int
    seconds: float
    other_before: float  # cores other processes used just before
    machine_cores: float  # the whole machine's, during
    own_cpu: float  # this process's CPU seconds, during
    postgres_cpu: float  # CPU seconds of the measured database's backends, during

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def row(self, label: str, raw_rate: float, *, bold: bool = False) -> str:
        ratio = f"{self.rate / raw_rate:.3f}"
        disturbed = " (disturbed)" if self.other_before >= 0.3 else ""
        return (
            f"| {label}{disturbed} | {self.count:,} | {self.seconds:.1f} | {self.rate:,.0f} | "
            f"{f'**{ratio}**' if bold else ratio} | {self.other_before:.2f} |"
        )


def _measured(work: Callable[[], int], patience: float, *, database: str = "") -> Measured:
    """Time `work` (which returns how many events it handled) after waiting for a quiet machine."""
    other = wait_for_quiet(limit=patience)
    busy, processes, own = machine_cpu()[0], cpu_snapshot(), time.process_time()
    started = time.monotonic()
    count = work()
    seconds = time.monotonic() - started
    own_cpu, after = time.process_time() - own, cpu_snapshot()
    postgres = sum(
        cpu - (processes[pid][1] if pid in processes else 0.0)
        for pid, (name, cpu) in after.items()
        if database and name == "postgres" and postgres_database(pid) == database
    )
    return Measured(count, seconds, other, (machine_cpu()[0] - busy) / seconds, own_cpu, postgres)


@contextmanager
def _statements() -> Iterator[list[int]]:
    """Count the statements every `ugc.platform.dialect.Cursor` runs in the block (a one-item list)."""
    counted, execute = [0], dialect.Cursor.execute

    def counting(self: dialect.Cursor, sql: str, params: Sequence[Any] = ()) -> dialect.Cursor:
        counted[0] += 1
        return execute(self, sql, params)

    dialect.Cursor.execute = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        dialect.Cursor.execute = execute  # type: ignore[method-assign]


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM orders_events").fetchone()
    assert row is not None
    return int(row[0])


def _stream(url: str) -> int:
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor(name="raw") as cur:
        cur.itersize = 5000
        cur.execute("SELECT * FROM orders_events ORDER BY notification_id")
        for _ in cur:
            rows += 1
    return rows


def _decode(stores: EventStores) -> int:
    app = stores.orders
    head = stores.heads([app.name])[app.name]
    decoded = 0
    with Reader(app, OrdersProjection().topics(), 0, head, BATCH_SIZE) as reader:
        while True:
            batch, _ = reader.next()
            decoded += len(batch)
            if len(batch) < BATCH_SIZE:
                return decoded


if __name__ == "__main__":
    main()
