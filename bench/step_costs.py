"""What each step of a lifecycle costs the machine on its own: CPU per request, by process.

Issue 15 asks that "the three follow-up commands cost no more than placing". Lifecycles/s against
placing's requests/s says it through throughput, which on a shared 2-core machine moves by ±20 %
from one measurement window to the next. This says it directly: the same orders go through each step
in turn (all placed, then all delivered, ...), `connections` clients at once, and the CPU that every
process used for a step (server workers, the projection process, PostgreSQL, this client), from the
first request until the read models have applied the last, is divided by the step's requests.

CPU seconds move with the machine (a shared 2-core VM runs a step 20 % slower one minute than the
next). What each step asks of the database does not: beside the CPU, each step's share of the
database's own counters (`pg_stat_database`: commits, rows written, buffers touched) per request,
read once every backend has reported them (`STATS_FLUSH`), says the same thing without that noise.
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


def measure(base: str, url: str, cast: Cast, walk: Sequence[str], *, workers: Sequence[int],
            projector: Sequence[int], settle: Callable[[], float], orders: int, connections: int) -> list[StepCost]:
    """`orders` orders through `walk` (run_orders.STEPS or some of them), one step at a time, on the
    server at `base` whose database is `url`."""
    delivery = (date.today() + timedelta(days=14)).isoformat()
    buyers, services = itertools.cycle(cast.buyers), itertools.cycle(cast.services)
    plan = [(next(buyers), service) for service in itertools.islice(services, orders)]
    placed: list[int] = []

    def jobs(step: str) -> list[Job]:
        if step == "place":
            return [("/api/v1/orders/", buyer, {"service_id": service, "requirements": "Ролик 30 секунд",
                                                 "delivery_date": delivery, "selected_option_ids": []}, 201)
                    for buyer, service in plan]
        acting = {"accept": "creator", "deliver": "creator", "approve": "buyer", "review": "buyer"}[step]
        routes: dict[str, tuple[str, dict[str, Any], int]] = {
            "accept": ("accept/", {}, 200),
            "deliver": ("deliveries/", {"message": "Готово", "file_ids": []}, 201),
            "approve": ("approve/", {}, 200),
            "review": ("reviews/", {"rating": 5, "content": "Отлично"}, 201),
        }
        path, body, status = routes[step]
        return [(f"/api/v1/orders/{order}/{path}", buyer if acting == "buyer" else cast.owner(service), body, status)
                for order, (buyer, service) in zip(placed, plan, strict=True)]

    costs = []
    settle()
    time.sleep(STATS_FLUSH)
    counted = database_work(url)
    for step in walk:
        work = jobs(step)
        before, busy, client = cpu_snapshot(), machine_cpu()[0], time.process_time()
        began = time.monotonic()
        answers, failures = uvloop.run(_send(base, work, connections))
        sent = time.monotonic() - began
        settle()
        used = cpu_used(before, cpu_snapshot())
        machine_ms = 1e3 * (machine_cpu()[0] - busy) / len(work)
        time.sleep(STATS_FLUSH)  # then the next step begins from these counters
        since, counted = counted, database_work(url)
        by_role = dict.fromkeys(ROLES, 0.0)
        by_role["client"] = time.process_time() - client
        for pid, (name, seconds) in used.items():
            if pid in workers:
                by_role["workers"] += seconds
            elif pid in projector:
                by_role["projector"] += seconds
            elif name == "postgres":
                by_role["postgres"] += seconds
        if step == "place":
            if failures:
                raise RuntimeError(f"{failures} of {len(work)} orders were not placed")
            placed = [json.loads(answer)["id"] for answer in answers]
        costs.append(StepCost(step, len(work), failures, len(work) / sent,
                              {role: 1e3 * seconds / len(work) for role, seconds in by_role.items()}, machine_ms,
                              {name: (counted[name] - since[name]) / len(work) for name in DATABASE_WORK}))
    return costs


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
