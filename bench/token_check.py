"""What checking a request's access token against its account costs (api/auth.py), piece by piece.

Measured in this process against a fresh PostgreSQL database (and a fresh SQLite file), with the
project's own stores and pools:

* the JWT check alone (`TokenService.user_id`, signature remembered);
* `standing_of` for a user this process has seen (the path of nearly every request);
* `Standings.load`: the user aggregate read from the event store (a process's first request of a
  user, and a write by a user not verified yet), called directly and as the server calls it
  (`Services.run`: a hop to a worker thread and back);
* for comparison, what a check against the read table would cost on every request: one
  `SELECT is_verified FROM users WHERE id = %s` through `Database.read()`.

Usage:  .venv/bin/python bench/token_check.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from common import fresh_database

from api.auth import standing_of
from api.tokens import TokenService
from commands.standing import Standings
from ugc.accounts import User
from ugc.clock import SystemClock
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate


def per_call(function: Callable[[], object], calls: int) -> float:
    """Median µs per call over five runs of `calls // 5` calls."""
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(calls // 5):
            function()
        runs.append((time.perf_counter() - began) / (calls // 5) * 1e6)
    return statistics.median(runs)


def per_await(function: Callable[[], Awaitable[object]], calls: int) -> float:
    async def measure() -> float:
        runs = []
        for _ in range(5):
            began = time.perf_counter()
            for _ in range(calls // 5):
                await function()
            runs.append((time.perf_counter() - began) / (calls // 5) * 1e6)
        return statistics.median(runs)

    return asyncio.run(measure())


def measure(url: str, calls: int) -> list[tuple[str, float]]:
    db = Database(url)
    stores: EventStores | None = None
    blocking = ThreadPoolExecutor(8)
    try:
        migrate(db)
        stores = EventStores(url, data_key=secrets.token_urlsafe(32))  # a scratch database's own
        user = User(
            number=1,
            username="bench",
            email="bench@example.com",
            password_hash="x",
            first_name="",
            last_name="",
            at=datetime.now(UTC),
            actor="operator:bench",
        )
        user.verify_email(datetime.now(UTC), "operator:bench")
        stores.accounts.save(user)
        with db.transaction(write=True) as cur:
            cur.execute(
                "INSERT INTO users (id, uuid, username, email, first_name, last_name, is_verified, roles, date_joined) "
                "VALUES (1, 'u', 'bench', 'b@example.com', '', '', %s, %s, %s)",
                (True, [], datetime.now(UTC)),
            )
        tokens = TokenService(
            secrets.token_urlsafe(48), SystemClock(), audience="bench", access_ttl=900, refresh_ttl=900
        )
        token = tokens.issue(1, "access")
        standings = Standings(stores, SystemClock())

        async def run(function: Callable[..., Any], *args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(blocking, function, *args)

        s: Any = SimpleNamespace(tokens=tokens, standings=standings, run=run)

        def read_table() -> object:
            with db.read() as cur:
                return cur.execute("SELECT is_verified FROM users WHERE id = %s", (1,)).fetchone()

        return [
            ("JWT check alone (TokenService.user_id)", per_call(lambda: tokens.user_id(token, "access"), calls)),
            ("standing_of, user seen before (every request)", per_await(lambda: standing_of(s, token), calls)),
            ("Standings.load: user aggregate from the event store", per_call(lambda: standings.load(1), calls)),
            ("Standings.load as the server calls it (thread hop)", per_await(lambda: run(standings.load, 1), calls)),
            ("for comparison: SELECT is_verified FROM users per request", per_call(read_table, calls)),
        ]
    finally:
        blocking.shutdown()
        if stores is not None:
            stores.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with fresh_database("ugc_bench_token") as url, tempfile.TemporaryDirectory() as tmp:
        results = {
            "PostgreSQL": measure(url, args.calls),
            "SQLite": measure(f"sqlite:///{Path(tmp) / 'ugc.sqlite3'}", args.calls),
        }
    print("| piece (one at a time) | PostgreSQL µs/call | SQLite µs/call |\n|---|---:|---:|")
    for (label, pg), (_, lite) in zip(results["PostgreSQL"], results["SQLite"], strict=True):
        print(f"| {label} | {pg:.1f} | {lite:.1f} |")


if __name__ == "__main__":
    main()
