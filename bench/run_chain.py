"""The hash chain's cost on placing orders, and `ugc verify`'s throughput, on PostgreSQL.

(1) Placing with and without the chain in the same run: two fresh databases, the same demo world in
    each, orders placed through `OrderCommands.place` (group commit and all, no HTTP, so the append
    is as large a share of the work as it gets) by `--threads` threads for `--duration` seconds,
    rounds alternating between the two. "Without" opens the stores with a recorder that appends
    with the library's own statements (serve_without_chain.UnchainedRecorder; this script replaces
    `eventsourcing_settings` for its "plain" stores only: the application has no switch that turns
    the chain off).
(2) `ugc verify`'s chain check over `--verify-events` events appended in batches of 500 (the
    database's size is what it is after seeding; the figure is events/s over every log).
The ceiling of the same run: raw single-row INSERT+COMMIT, 8 threads (bench/ceilings.py); there is
no HTTP here, so the hello-world ceiling is not measured.

Usage:  .venv/bin/python bench/run_chain.py [--duration 10] [--rounds 3] [--threads 16] [--verify-events 1000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ceilings import pg_insert  # noqa: E402
from common import DATA_KEY, fresh_database, machine_cpu, record  # noqa: E402
from eventsourcing.persistence import StoredEvent  # noqa: E402
from serve_without_chain import plain_settings  # noqa: E402

import ugc.platform.store as store  # noqa: E402
from commands.demo import CLIENTS, seed_demo  # noqa: E402
from commands.orders import OrderCommands  # noqa: E402
from commands.reference import load_reference_data  # noqa: E402
from ugc.cli.seeding import _demo_commands  # noqa: E402
from ugc.clock import SystemClock  # noqa: E402
from ugc.config import Settings  # noqa: E402
from ugc.platform.database import Database  # noqa: E402
from ugc.platform.log_verify import ChainCheck  # noqa: E402
from ugc.wiring import migrate, order_commands  # noqa: E402

CHAINED_SETTINGS = store.eventsourcing_settings


@contextmanager
def world(url: str, *, chained: bool) -> Iterator[tuple[OrderCommands, int, int, store.EventStores]]:
    """Order commands on a migrated database with the demo world: (commands, buyer id, service id)."""
    db = Database(url)
    migrate(db)
    store.eventsourcing_settings = CHAINED_SETTINGS if chained else plain_settings
    try:
        stores = store.EventStores(url, data_key=DATA_KEY)
    finally:
        store.eventsourcing_settings = CHAINED_SETTINGS
    settings = Settings.from_env(
        {"UGC_DATABASE_URL": url, "UGC_VAR_DIR": "/tmp/ugc-bench-chain", "UGC_DATA_KEY": DATA_KEY}
    )
    try:
        load_reference_data(stores, db, SystemClock(), "operator:bench")
        seed_demo(_demo_commands(settings, stores, db))
        orders = order_commands(settings, stores, db, SystemClock())
        buyer = _demo_commands(settings, stores, db).accounts.user_id(CLIENTS[0].username)
        assert buyer is not None
        due = datetime.now(UTC).date() + timedelta(days=10)
        service = next(s for s in (1, 2, 3) if _places(orders, buyer, s, due))
        yield orders, buyer, service, stores
    finally:
        stores.close()
        db.close()


def _places(orders: OrderCommands, buyer: int, service: int, due: Any) -> bool:
    try:
        orders.place(buyer, service, "проверка", due, [])
    except Exception:
        return False
    return True


def place_for(orders: OrderCommands, buyer: int, service: int, threads: int, duration: float) -> tuple[float, float]:
    """Orders placed per second by `threads` threads placing back to back for `duration` seconds, and
    this process's CPU time per order (µs; the database server's is not in it)."""
    due = datetime.now(UTC).date() + timedelta(days=10)
    stop = time.monotonic() + duration
    counts = [0] * threads

    def run(index: int) -> None:
        while time.monotonic() < stop:
            orders.place(buyer, service, "Обзор наушников", due, [])
            counts[index] += 1

    began, cpu = time.monotonic(), time.process_time()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    placed = sum(counts)
    return placed / (time.monotonic() - began), 1e6 * (time.process_time() - cpu) / max(placed, 1)


def seed_events(stores: store.EventStores, count: int, batch: int = 500) -> None:
    """`count` more events in the orders log: streams of 1-5 events, appended `batch` per transaction."""
    recorder = stores.orders.recorder
    state = json.dumps({"total_price": 1000, "requirements": "Обзор беспроводных наушников" * 3}).encode()
    pending: list[StoredEvent] = []
    done = 0
    while done < count:
        stream = uuid.uuid4()
        for version in range(1, 1 + min(5, count - done)):
            pending.append(StoredEvent(stream, version, "ugc.Order.Updated", state))
            done += 1
        if len(pending) >= batch or done >= count:
            recorder.insert_events(pending)
            pending = []


def verify_rate(stores: store.EventStores) -> tuple[int, float]:
    began, events = time.monotonic(), 0
    for name, app in stores.applications.items():
        check = ChainCheck(name, app.recorder, stores.chained(name))
        findings = list(check.run(check.head(), lambda _: None))
        assert not findings, findings[:3]
        events += check.checked
    return events, events / (time.monotonic() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    began = datetime.now(UTC)
    lines = [f"# Hash chain: placing with and without it; `ugc verify` throughput ({began:%Y-%m-%d %H:%M} UTC)", ""]
    lines.append(
        f"Command: `python bench/run_chain.py --duration {args.duration:g} --rounds {args.rounds} "
        f"--threads {args.threads} --verify-events {args.verify_events}`"
    )
    busy0, total0 = machine_cpu()
    with fresh_database("ugc_bench_chain") as chained_url, fresh_database("ugc_bench_plain") as plain_url:
        ceiling = pg_insert(chained_url)
        rates: dict[str, list[float]] = {"chained": [], "plain": []}
        cpus: dict[str, list[float]] = {"chained": [], "plain": []}
        with world(chained_url, chained=True) as chained, world(plain_url, chained=False) as plain:
            for round_ in range(args.rounds + 1):  # round 0 warms caches and prepared statements up
                for name, (orders, buyer, service, _stores) in (("chained", chained), ("plain", plain)):
                    rate, cpu = place_for(orders, buyer, service, args.threads, args.duration if round_ else 2.0)
                    if round_:
                        rates[name].append(rate)
                        cpus[name].append(cpu)
                    print(f"{name}: {rate:,.0f} orders/s, {cpu:,.0f} µs CPU/order", file=sys.stderr)
            stores = chained[3]
            seed_began = time.monotonic()
            seed_events(stores, args.verify_events)
            seed_took = time.monotonic() - seed_began
            events, rate = verify_rate(stores)
    busy1, total1 = machine_cpu()
    chained_rate, plain_rate = statistics.median(rates["chained"]), statistics.median(rates["plain"])
    lines += [
        "",
        "Machine: 2 cores shared with other work; CPU busy over the run "
        f"{100 * (busy1 - busy0) / (total1 - total0):.0f}%.",
        f"Ceiling (same run): raw INSERT+COMMIT, 8 threads: {ceiling.tps:,.0f} tx/s.",
        "",
        "| placing, OrderCommands.place, "
        f"{args.threads} threads | rounds (orders/s) | median | ÷ INSERT+COMMIT | client CPU µs/order (median) |",
        "| --- | --- | --- | --- | --- |",
        f"| with the chain | {', '.join(f'{r:,.0f}' for r in rates['chained'])} | {chained_rate:,.0f} | "
        f"{chained_rate / ceiling.tps:.3f} | {statistics.median(cpus['chained']):,.0f} |",
        f"| without (the library's append) | {', '.join(f'{r:,.0f}' for r in rates['plain'])} | {plain_rate:,.0f} | "
        f"{plain_rate / ceiling.tps:.3f} | {statistics.median(cpus['plain']):,.0f} |",
        "",
        f"Cost of the chain: with ÷ without = **{chained_rate / plain_rate:.3f}** "
        f"({100 * (1 - chained_rate / plain_rate):.1f}% fewer orders/s; target under 10%). Rounds alternate "
        "between the two after one warm-up round each (not counted).",
        "",
        f"`ugc verify` chain check: {events:,} events (of which {args.verify_events:,} seeded in batches of 500, "
        f"chained on append, in {seed_took:.0f} s) verified at **{rate:,.0f} events/s** "
        f"({events / rate:.0f} s).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_record:
        record(text, "chain", began)


if __name__ == "__main__":
    main()
