"""What sealing personal data costs (ugc/platform/personal_data.py), beside this machine's ceilings.

On a fresh PostgreSQL database and a fresh SQLite file, in one run:

* registrations through `AccountCommands.register` (argon2id at its cheapest, so the hash, which
  dominates a real registration at ~0.1 s, does not hide the rest), sealed against unsealed: the same
  mapper with no rules, so nothing else differs; rounds alternate;
* decoding the personal events of the accounts log, as a replay or a rebuild does: the sealed ones
  (their keys not yet opened by this process, then opened) against the unsealed ones;

then the ceilings of the same run: single-row INSERT+COMMIT into PostgreSQL (1 client) and a
hello-world endpoint (1 uvicorn worker, 16 connections).

Usage:  .venv/bin/python bench/personal_data_cost.py [--users 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ceilings
import loadgen
from argon2 import PasswordHasher
from common import DATA_KEY, fresh_database

from commands.accounts import AccountCommands, Register
from ugc.clock import SystemClock
from ugc.personal import PERSONAL
from ugc.platform.database import Database
from ugc.platform.personal_data import PersonalDataMapper
from ugc.platform.store import EventStores
from ugc.wiring import migrate

CHEAPEST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@contextmanager
def opened(url: str, *, sealed: bool) -> Iterator[EventStores]:
    stores = EventStores(url, data_key=DATA_KEY)
    mapper = stores.accounts.mapper
    assert isinstance(mapper, PersonalDataMapper)
    mapper.rules = PERSONAL if sealed else {}
    try:
        yield stores
    finally:
        stores.close()


def register_ms(url: str, db: Database, users: int, *, sealed: bool, prefix: str) -> float:
    """Milliseconds per registration (claims, user, verification token in one append) over `users`."""
    with opened(url, sealed=sealed) as stores:
        accounts = AccountCommands(stores, db, SystemClock(), hasher=CHEAPEST)
        began = time.perf_counter()
        for n in range(users):
            name = f"{prefix}_{n}"
            accounts.register(Register(name, f"{name}@example.com", "correct-horse-battery", "Имя", "Фамилия"))
        return (time.perf_counter() - began) / users * 1000


def decode_us(url: str) -> tuple[float, float, float]:
    """Microseconds per event to decode the personal events of the accounts log: the sealed ones with
    their keys not opened yet, then opened, and the unsealed ones of the same kinds (medians of 5 passes)."""
    with opened(url, sealed=True) as stores:
        app = stores.accounts
        head = app.recorder.max_notification_id() or 0
        personal = [n for n in app.recorder.select_notifications(start=1, limit=head) if n.topic in PERSONAL]
        sealed = [n for n in personal if b'"sealed":' in n.state]
        plain = [n for n in personal if b'"sealed":' not in n.state]

        def per_event(events: list[Any]) -> float:
            began = time.perf_counter()
            for notification in events:
                app.mapper.to_domain_event(notification)
            return (time.perf_counter() - began) / len(events) * 1e6

        cold = per_event(sealed)  # the first pass only: every later one finds the keys opened
        warm = statistics.median(per_event(sealed) for _ in range(5))
        return cold, warm, statistics.median(per_event(plain) for _ in range(5))


def backend(url: str, users: int, rounds: int) -> list[str]:
    db = Database(url)
    try:
        migrate(db)
        timings: dict[bool, list[float]] = {True: [], False: []}
        for round_number in range(rounds):
            for sealed in (True, False) if round_number % 2 == 0 else (False, True):
                prefix = f"{'s' if sealed else 'p'}{round_number}"
                timings[sealed].append(register_ms(url, db, users, sealed=sealed, prefix=prefix))
        cold_sealed, warm_sealed, plain = decode_us(url)
    finally:
        db.close()
    sealed_ms, plain_ms = statistics.median(timings[True]), statistics.median(timings[False])
    return [
        f"| registration, sealed | {sealed_ms:.2f} ms | rounds {', '.join(f'{t:.2f}' for t in timings[True])} |",
        f"| registration, unsealed | {plain_ms:.2f} ms | rounds {', '.join(f'{t:.2f}' for t in timings[False])} |",
        f"| sealing's share | {sealed_ms - plain_ms:+.2f} ms ({(sealed_ms / plain_ms - 1) * 100:+.0f} %) | |",
        f"| decode a sealed event, its key not opened yet | {cold_sealed:.1f} µs | keys fetched 256 at a time |",
        f"| decode a sealed event, its key opened | {warm_sealed:.1f} µs | |",
        f"| decode an unsealed event of the same kinds | {plain:.1f} µs | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=200, help="registrations per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    header = ["| what | median | notes |", "|---|---:|---|"]
    with fresh_database("ugc_bench_sealing") as url:
        postgres = backend(url, args.users, args.rounds)
        insert = ceilings.pg_insert(url, clients=1, duration=3.0)
    with tempfile.TemporaryDirectory() as directory:
        sqlite = backend(f"sqlite:///{Path(directory) / 'ugc.sqlite3'}", args.users, args.rounds)
    hello = ceilings.hello_world(16, 3.0, engine=loadgen.DEFAULT_ENGINE)
    print("### PostgreSQL", "", *header, *postgres, "", "### SQLite", "", *header, *sqlite, "", sep="\n")
    print(
        f"Ceilings, same run: PostgreSQL single-row INSERT+COMMIT, 1 client: {insert.tps:,.0f} tx/s "
        f"(p50 {insert.p50_ms:.2f} ms); hello-world, 1 worker, 16 connections: {hello.rps:,.0f} req/s."
    )


if __name__ == "__main__":
    main()
