"""What each step of a lifecycle costs the machine on its own: CPU per request, by process.

Issue 15 asks that "the three follow-up commands cost no more than placing". Lifecycles/s against
placing's requests/s says it through throughput, which on a shared 2-core machine moves by ±20 %
from one measurement window to the next. This says it directly: the orders go through each step
in turn, `connections` clients at once, and the CPU that every process used for a step (server
workers, the projection process, PostgreSQL, this client), from the first request until the read
models have applied the last, is divided by the step's requests.

CPU seconds move with the machine (a shared 2-core VM runs a step 20 % slower one minute than the
next): measured in one window a step, all placed then all delivered..., the steps were told apart
by when they ran as much as by what they cost (deliver 1.42 of a placing at 16 connections and
0.83 at 64 in one run, bench/results/2026-12-04-2141-lifecycle.md). So the orders go in `COHORTS`
cohorts, each through every step before the next: each step's windows are spread over the whole
measurement, and the drift weighs on every step alike. What each step asks of the database does
not drift: beside the CPU, each step's share of the database's own counters (`pg_stat_database`:
commits, rows written, buffers touched) per request, read once every backend has reported them
(`STATS_FLUSH`), says the same thing without that noise.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
import uvloop
from common import CONNECT_STAGGER, cpu_snapshot, cpu_used, machine_cpu
from run_orders import Cast, Party, RawConnection

ROLES = ("workers", "projector", "postgres", "client")
# A backend reports its counters to pg_stat_database when it goes idle, at most once a second, and
# an idle one within 10 s (PGSTAT_IDLE_INTERVAL): read this long after a step, they hold all of it.
STATS_FLUSH = 11.0
COHORTS = 3  # windows a step, spread over the measurement; each window waits STATS_FLUSH after it
DATABASE_WORK = {
    "commits": "xact_commit",
    "rows written": "tup_inserted + tup_updated + tup_deleted",
    "buffers touched": "blks_hit + blks_read",
}


@dataclass(frozen=True)
class StepCost:
    step: str
    requests: int
    failures: int
    per_second: float  # while the requests went, before the read models' catch-up
    cpu_ms: dict[str, float]  # role -> CPU ms per request
    machine_ms: float  # every process on the machine, per request
    database: dict[str, float]  # DATABASE_WORK's counters, per request


Job = tuple[str, Party, dict[str, Any], int]  # path, acting party, body, expected status


async def _send(base: str, jobs: Sequence[Job], connections: int) -> tuple[list[bytes], int]:
    """Every job's answer, in the jobs' order, and how many answered another status than expected."""
    address = urlsplit(base)
    pool = [RawConnection(address.hostname or "127.0.0.1", address.port or 80, 30.0) for _ in range(connections)]
    pending = iter(enumerate(jobs))
    answers: list[bytes] = [b""] * len(jobs)
    failures = 0

    async def client(connection: RawConnection, delay: float) -> None:
        nonlocal failures
        await asyncio.sleep(delay)  # spread over both workers
        for index, (path, party, body, expected) in pending:
            status, answers[index] = await connection.post(path, party.auth, body)
            failures += status != expected

    try:
        await asyncio.gather(*(client(c, k * CONNECT_STAGGER) for k, c in enumerate(pool)))
    finally:
        for connection in pool:
            connection.close()
    return answers, failures


def database_work(url: str) -> dict[str, float]:
    """The database's counters of DATABASE_WORK as its backends last reported them."""
    columns = ", ".join(f"{expression} AS \"{name}\"" for name, expression in DATABASE_WORK.items())
    with psycopg.connect(url, autocommit=True) as connection:
        query = f"SELECT {columns} FROM pg_stat_database WHERE datname = current_database()"
        row = connection.execute(query).fetchone()
    assert row is not None
    return {name: float(value) for name, value in zip(DATABASE_WORK, row, strict=True)}


@dataclass
class _Window:
    """What one or more windows of a step took: requests, failures, seconds sending, CPU seconds by
    role and of the whole machine, the database's counters."""

    requests: int
    failures: int
    seconds: float
    cpu: dict[str, float]
    machine: float
    database: dict[str, float]

    def add(self, other: _Window) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.seconds += other.seconds
        self.machine += other.machine
        for role, seconds in other.cpu.items():
            self.cpu[role] += seconds
        for name, count in other.database.items():
            self.database[name] += count

    def cost(self, step: str) -> StepCost:
        n = self.requests
        return StepCost(step, n, self.failures, n / self.seconds, {role: 1e3 * s / n for role, s in self.cpu.items()},
                        1e3 * self.machine / n, {name: count / n for name, count in self.database.items()})


def measure(base: str, url: str, cast: Cast, walk: Sequence[str], *, workers: Sequence[int],
            projector: Sequence[int], settle: Callable[[], float], orders: int, connections: int,
            cohorts: int = COHORTS) -> list[StepCost]:
    """`orders` orders through `walk` (run_orders.STEPS or some of them), in `cohorts` cohorts taken
    through every step one after the other, each step a window of its own, on the server at `base`
    whose database is `url`; each step's costs summed over its windows."""
    delivery = (date.today() + timedelta(days=14)).isoformat()
    buyers, services = itertools.cycle(cast.buyers), itertools.cycle(cast.services)
    plan = [(next(buyers), service) for service in itertools.islice(services, orders)]

    def jobs(step: str, cohort: Sequence[tuple[Party, int]], placed: Sequence[int]) -> list[Job]:
        if step == "place":
            return [("/api/v1/orders/", buyer, {"service_id": service, "requirements": "Ролик 30 секунд",
                                                 "delivery_date": delivery, "selected_option_ids": []}, 201)
                    for buyer, service in cohort]
        acting = {"accept": "creator", "deliver": "creator", "approve": "buyer", "review": "buyer"}[step]
        routes: dict[str, tuple[str, dict[str, Any], int]] = {
            "accept": ("accept/", {}, 200),
            "deliver": ("deliveries/", {"message": "Готово", "file_ids": []}, 201),
            "approve": ("approve/", {}, 200),
            "review": ("reviews/", {"rating": 5, "content": "Отлично"}, 201),
        }
        path, body, status = routes[step]
        return [(f"/api/v1/orders/{order}/{path}", buyer if acting == "buyer" else cast.owner(service), body, status)
                for order, (buyer, service) in zip(placed, cohort, strict=True)]

    totals = {step: _Window(0, 0, 0.0, dict.fromkeys(ROLES, 0.0), 0.0, dict.fromkeys(DATABASE_WORK, 0.0))
              for step in walk}
    settle()
    time.sleep(STATS_FLUSH)
    counted = database_work(url)
    for k in range(cohorts):
        cohort = plan[k * orders // cohorts:(k + 1) * orders // cohorts]
        placed: list[int] = []
        for step in walk:
            work = jobs(step, cohort, placed)
            window, answers, counted = _window(base, url, work, connections, workers=workers, projector=projector,
                                               settle=settle, counted=counted)
            if step == "place":
                if window.failures:
                    raise RuntimeError(f"{window.failures} of {len(work)} orders were not placed")
                placed = [json.loads(answer)["id"] for answer in answers]
            totals[step].add(window)
    return [window.cost(step) for step, window in totals.items()]


def _window(base: str, url: str, work: Sequence[Job], connections: int, *, workers: Sequence[int],
            projector: Sequence[int], settle: Callable[[], float],
            counted: dict[str, float]) -> tuple[_Window, list[bytes], dict[str, float]]:
    """`work` sent and applied by the read models: what it took (the database's counters since
    `counted`), its answers, and the counters now, which the next window starts from."""
    before, busy, client = cpu_snapshot(), machine_cpu()[0], time.process_time()
    began = time.monotonic()
    answers, failures = uvloop.run(_send(base, work, connections))
    sent = time.monotonic() - began
    settle()
    used = cpu_used(before, cpu_snapshot())
    machine = machine_cpu()[0] - busy
    time.sleep(STATS_FLUSH)  # then the next window begins from these counters
    now = database_work(url)
    by_role = dict.fromkeys(ROLES, 0.0)
    by_role["client"] = time.process_time() - client
    for pid, (name, seconds) in used.items():
        if pid in workers:
            by_role["workers"] += seconds
        elif pid in projector:
            by_role["projector"] += seconds
        elif name == "postgres":
            by_role["postgres"] += seconds
    database = {name: now[name] - counted[name] for name in DATABASE_WORK}
    return _Window(len(work), failures, sent, by_role, machine, database), answers, now


def _placing(costs: list[StepCost]) -> StepCost:
    """Placing's costs, what every other step is set against."""
    return next(c for c in costs if c.step == "place")


def rows(costs: list[StepCost]) -> list[str]:
    placing = _placing(costs)
    lines = ["| step | requests | failed | req/s | CPU ms a request: " + " / ".join(ROLES)
             + " | whole machine ms a request | ÷ placing's | database a request: " + " / ".join(DATABASE_WORK)
             + " | ÷ placing's |",
             "|---|---:|---:|---:|---|---:|---:|---|---|"]
    for c in costs:
        lines.append(f"| {c.step} | {c.requests:,} | {c.failures} | {c.per_second:,.0f} | "
                     + " / ".join(f"{c.cpu_ms[role]:.2f}" for role in ROLES)
                     + f" | {c.machine_ms:.2f} | **{c.machine_ms / placing.machine_ms:.2f}** | "
                     + " / ".join(f"{c.database[name]:.1f}" for name in DATABASE_WORK) + " | "
                     + " / ".join(f"{c.database[name] / placing.database[name]:.2f}" for name in DATABASE_WORK)
                     + " |")
    return lines


def lifecycle_share(costs: list[StepCost]) -> float:
    """Lifecycles/s ÷ placing's req/s on a machine these costs saturate: a lifecycle costs its steps'
    sum, placing one placing (the whole-run ratio, without its windows' drift)."""
    return _placing(costs).machine_ms / sum(c.machine_ms for c in costs)
