"""What one GET /api/v1/users/me/ costs, piece by piece, outside the server (same code, same pool).

Measured in this process against a fresh PostgreSQL database (migrated by the project's own
`ugc.wiring.migrate`):

* the JWT check (`api.tokens.TokenService.user_id`);
* one hop to a worker thread and back (`anyio.to_thread.run_sync`, what `Services.run` uses), on uvloop;
* `readmodels.users.get_user` through the project's `ugc.platform.database.Database` (pool checkout, BEGIN,
  SELECT, COMMIT), one thread;
* the same SELECT on an autocommit connection (one round trip), for comparison;
* `get_user` from 8..64 threads at once through the same `Database` pool: the server runs it on
  anyio's worker threads (40 at most by default), so more threads than pool connections is the
  server's situation under load.

Usage:  .venv/bin/python bench/users_me_parts.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import functools
import secrets
import threading
import time
from collections.abc import Callable

import anyio
import psycopg
from anyio import to_thread
from common import fresh_database, undisturbed

from api.tokens import TokenService
from readmodels.users import get_user
from ugc.clock import SystemClock
from ugc.platform.database import Database
from ugc.wiring import migrate

THREADS = (8, 16, 24, 40, 64)


def per_call(function: Callable[[], object], calls: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per call of `function`, called `calls` times in a row."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        function()
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def thread_hop(calls: int) -> tuple[float, float]:
    async def hops() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await to_thread.run_sync(int)
        return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6

    return anyio.run(hops, backend_options={"use_uvloop": True})


def concurrent_calls(db: Database, threads: int, seconds: float) -> tuple[float, float]:
    """(calls/s, CPU µs per call) of get_user from `threads` threads for `seconds`."""
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def work(index: int) -> None:
        while time.monotonic() < stop_at:
            get_user(db, 1)
            counts[index] += 1

    wall, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sum(counts) / wall, cpu / sum(counts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per multi-thread measurement")
    args = parser.parse_args()
    tokens = TokenService(secrets.token_urlsafe(48), SystemClock(), audience="bench", access_ttl=900, refresh_ttl=900)
    token = tokens.issue(1, "access")
    with fresh_database("ugc_bench_parts") as url:
        db = Database(url)
        try:
            migrate(db)
            pool_max = db._pool.max_size if db._pool is not None else 0  # noqa: SLF001 - reporting only
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(url, autocommit=True) as conn:
                pieces: list[tuple[str, Callable[[], tuple[float, float]]]] = [
                    ("JWT check (TokenService.user_id)",
                     lambda: per_call(lambda: tokens.user_id(token, "access"), 5000)),
                    ("thread hop (anyio.to_thread.run_sync, uvloop)", lambda: thread_hop(3000)),
                    ("get_user via Database: checkout + BEGIN + SELECT + COMMIT",
                     lambda: per_call(lambda: get_user(db, 1), 3000)),
                    ("same SELECT, autocommit connection (1 round trip)", lambda: per_call(
                        lambda: conn.execute("SELECT id, username FROM users WHERE id = %s", (1,)).fetchone(), 3000)),
                ]
                print("| piece (1 thread, in a row) | wall µs/call | CPU µs/call | other load (cores) |"
                      "\n|---|---:|---:|---:|")
                for label, measure in pieces:
                    (wall, cpu), other = undisturbed(measure, name)
                    print(f"| {label} | {wall:.0f} | {cpu:.0f} | {other:.2f} |")
            print(f"\n| get_user from N threads, Database pool max_size={pool_max} | calls/s | CPU µs/call "
                  "| other load (cores) |\n|---|---:|---:|---:|")
            for threads in THREADS:
                (rate, cpu), other = undisturbed(functools.partial(concurrent_calls, db, threads, args.seconds), name)
                print(f"| {threads} threads | {rate:,.0f} | {cpu:.0f} | {other:.2f} |")
        finally:
            db.close()


if __name__ == "__main__":
    main()
