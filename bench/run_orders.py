"""Orders under load on PostgreSQL, one `ugc serve` worker, beside the same run's ceilings.

What it measures (the orders issue's `bench/` bullet):

* `POST /api/v1/orders/` requests/s, p50, p99 at 16 and 64 connections (loadgen.py; every request
  from one of 64 verified buyers, each with their own token, onto one of 32 services);
* whole lifecycles per second: place -> accept -> deliver -> approve -> review, each step an HTTP
  request with the acting party's token, N lifecycles at once (each on one raw HTTP connection), with each
  step's latency;
* `GET /api/v1/orders/?status=pending` p50/p99 at 16 connections with 100,000 orders in the store,
  as the buyer with the most orders, as a buyer with ten, and as a creator; plus EXPLAIN ANALYZE of
  the exact statements readmodels/orders.py `list_orders` sends;
* the time from `POST .../approve/` answering to `GET /api/v1/creators/{id}/` showing the creator's
  `completed_orders` incremented (and the approve's own latency);

beside the ceilings of ceilings.py measured in the same run (hello-world HTTP, raw PostgreSQL
single-row INSERT+COMMIT), with the ratio placing-req/s / raw-insert-tx/s. During the POST runs it
samples pg_stat_activity to show where the backends spend the time.

Setup goes through the API of the running server (production argon2 defaults): users register,
verify with the token from the mail in UGC_VAR_DIR/outbox, log in; creators create profiles and
services. The 100,000 orders are Order aggregates appended to the orders event store in batches
(seed_orders.py) while the server runs; the projection runner applies them before the list is
measured. Prints markdown and writes it to a dated file in bench/results/ (common.record).

Usage:  .venv/bin/python bench/run_orders.py [--orders 100000] [--duration 10] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import itertools
import json
import os
import platform
import re
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ceilings
import httpx
import loadgen
import psycopg
import seed_orders
import uvloop
from common import (
    CONNECT_STAGGER,
    DATA_KEY,
    PG_ADMIN_URL,
    cpu_snapshot,
    cpu_used,
    fresh_database,
    machine_cpu,
    process_cpu_seconds,
    record,
    wait_for_quiet,
)
from loadgen import Result, Scenario
from run_auth import PASSWORD, register_body, source_fingerprint, ugc_server

from readmodels import orders as orders_read
from readmodels.pages import PageRequest, read_page
from readmodels.tracking import lagging
from ugc.orders import Order
from ugc.platform.database import Database
from ugc.platform.store import EventStores, create_event_tables

CORES = os.cpu_count() or 1
JSON_HEADERS = {"Content-Type": "application/json"}
LINK = re.compile(r"/verify-email\?token=([A-Za-z0-9._-]*[A-Za-z0-9_-])")
STEPS = ("place", "accept", "deliver", "approve", "review")


def pct(values: Sequence[float], p: float) -> float:
    """The p-quantile (0..1) of `values` in ms (values in seconds); 0 when empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0


# --- the cast: users created through the API --------------------------------------------------


@dataclass
class Party:
    username: str
    user_id: int = 0
    access: str = ""
    refresh: str = ""
    profile_id: int = 0
    services: list[int] = field(default_factory=list)

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Cast:
    creators: list[Party]
    buyers: list[Party]
    light: Party  # a buyer who gets only a few orders
    seconds: float = 0.0

    @property
    def services(self) -> list[int]:
        return [s for c in self.creators for s in c.services]

    def owner(self, service: int) -> Party:
        return next(c for c in self.creators if service in c.services)


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def mailed_tokens(outbox: Path) -> dict[str, str]:
    """Recipient -> verification token, from every mail in the outbox."""
    found = {}
    for path in outbox.glob("*.eml"):
        mail = email.message_from_bytes(path.read_bytes())
        payload = mail.get_payload(decode=True)
        match = LINK.search(payload.decode() if isinstance(payload, bytes) else "")
        if match:
            found[str(mail["To"])] = match.group(1)
    return found


async def build_cast(
    client: httpx.AsyncClient, outbox: Path, *, creators: int, buyers: int, services_per_creator: int
) -> Cast:
    """Register, verify and log in everybody through the API; creators get profiles and services."""
    began = time.monotonic()
    prefix = f"o{secrets.token_hex(3)}_"
    cast = Cast(
        [Party(f"{prefix}c{i}") for i in range(creators)],
        [Party(f"{prefix}b{i}") for i in range(buyers)],
        Party(f"{prefix}light"),
    )
    everybody = [*cast.creators, *cast.buyers, cast.light]
    limit = asyncio.Semaphore(4)  # argon2id: 64 MiB and a few cores' worth of work per request

    async def register(p: Party) -> None:
        async with limit:
            p.user_id = expect(await client.post("/api/auth/register/", json=register_body(p.username)), 201)["id"]

    async def verify(p: Party) -> None:
        deadline = time.monotonic() + 30
        while (token := mailed_tokens(outbox).get(p.email)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no verification mail to {p.email} in {outbox}")
            await asyncio.sleep(0.1)
        expect(await client.post("/api/auth/verify-email/", json={"token": token}), 200)

    async def login(p: Party) -> None:
        async with limit:
            tokens = expect(
                await client.post("/api/auth/token/", json={"username": p.username, "password": PASSWORD}), 200
            )
        p.access, p.refresh = tokens["access"], tokens["refresh"]

    await asyncio.gather(*(register(p) for p in everybody))
    await asyncio.gather(*(verify(p) for p in everybody))
    await asyncio.gather(*(login(p) for p in everybody))
    category = expect(await client.get("/api/v1/categories/"), 200)["results"][0]["id"]

    async def open_shop(c: Party, index: int) -> None:
        profile = {"specialization": "UGC-видео", "experience": "5 лет"}
        c.profile_id = expect(
            await client.post("/api/v1/users/me/creator-profile/", headers=c.auth, json=profile), 201
        )["id"]
        for n in range(services_per_creator):
            body = {
                "title": f"Видеообзор товара {index}-{n}",
                "description": "Сниму обзор на ваш товар.",
                "category_id": category,
                "base_price": 1000 + 100 * n,
                "delivery_time": 7,
                "options": [{"name": "Срочно", "description": "За 2 дня", "price": 200}],
                "tags": ["обзор"],
            }
            c.services.append(expect(await client.post("/api/v1/services/", headers=c.auth, json=body), 201)["id"])

    await asyncio.gather(*(open_shop(c, i) for i, c in enumerate(cast.creators)))
    cast.seconds = time.monotonic() - began
    return cast


async def refresh_tokens(client: httpx.AsyncClient, parties: Sequence[Party]) -> None:
    """New access tokens (they live 15 minutes; the run is longer) from the refresh tokens: no argon2.

    A refresh token works once (the answer carries the next one), and one used twice ends its
    session: each party is refreshed once, even if it is listed twice.
    """

    async def one(p: Party) -> None:
        pair = expect(await client.post("/api/auth/token/refresh/", json={"refresh": p.refresh}), 200)
        p.access, p.refresh = pair["access"], pair["refresh"]

    await asyncio.gather(*(one(p) for p in {id(p): p for p in parties}.values()))


def refreshed(base: str, parties: Sequence[Party]) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await refresh_tokens(client, parties)

    uvloop.run(go())


# --- the shared PostgreSQL's connection slots ----------------------------------------------------


def free_connections() -> int:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int "
            "- count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for_connections(needed: int, limit: float = 300.0) -> int:
    """Wait (at most `limit` s) until the shared server has `needed` free connection slots; the free slots.

    Other people's servers and tests use the same PostgreSQL (max_connections 100); one `ugc serve`
    worker alone may open 16 read connections + 15 per event store + the runner's.
    """
    deadline = time.monotonic() + limit
    while True:
        try:
            free = free_connections()
        except psycopg.OperationalError:
            free = 0
        if free >= needed or time.monotonic() > deadline:
            return free
        print(f"  waiting for {needed} free PostgreSQL connections ({free} free)", file=sys.stderr)
        time.sleep(5)


# --- seeding 100,000 orders ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeedReport:
    seeded: seed_orders.Seeded
    catch_up_seconds: float  # from the last append until the read models had applied everything
    table: dict[str, Any]


def seed_and_catch_up(url: str, cast: Cast, count: int, *, batch: int, timeout: float) -> SeedReport:
    plan = seed_orders.Plan(
        buyers=[b.user_id for b in cast.buyers],
        services=cast.services,
        heavy=cast.buyers[0].user_id,
        heavy_share=0.2,
        light=cast.light.user_id,
        light_count=10,
    )
    wait_for_connections(20)
    db = Database(url)
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        seeded = seed_orders.seed(
            stores,
            db,
            plan,
            count=count,
            batch=batch,
            progress=lambda s: (
                print(f"  {s.orders} orders appended ({s.seconds:.0f} s)", file=sys.stderr)
                if s.orders % (batch * 10) == 0 or s.orders == count
                else None
            ),
        )
        head = stores.orders.recorder.max_notification_id() or 0
        began = time.monotonic()
        while behind := lagging(db, {"orders": head}):
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"read models still behind after {timeout:.0f} s: {behind} < {head}")
            time.sleep(0.5)
        caught_up = time.monotonic() - began
        print(f"  the server's runner applied them {caught_up:.0f} s after the last append", file=sys.stderr)
    finally:
        stores.close()
        db.close()
    return SeedReport(seeded, caught_up, table_stats(url, "orders"))


def table_stats(url: str, table: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT n_live_tup, n_dead_tup, last_autovacuum, last_autoanalyze, last_vacuum, last_analyze, "
            "pg_size_pretty(pg_total_relation_size(relid)) AS size FROM pg_stat_user_tables WHERE relname = %s",
            (table,),
        ).fetchone()
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None and count is not None
    names = ("n_live_tup", "n_dead_tup", "last_autovacuum", "last_autoanalyze", "last_vacuum", "last_analyze", "size")
    return dict(zip(names, row, strict=True)) | {"rows": count[0]}


def pending_orders(url: str, user_id: int) -> tuple[int, int]:
    """(orders the user takes part in, of which pending), from the read table (for the report only)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM orders "
            "WHERE buyer_id = %s OR creator_id = %s",
            (user_id, user_id),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# --- where the backends spend the time -----------------------------------------------------------


class ActivitySampler:
    """Samples pg_stat_activity of one database every `interval` s from a connection to another one."""

    def __init__(self, database: str, interval: float = 0.05) -> None:
        self.database = database
        self.interval = interval
        self.samples: list[tuple[float, Counter[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity "
                    "WHERE datname = %s AND backend_type = 'client backend'",
                    (self.database,),
                ).fetchall()
                self.samples.append((time.monotonic(), Counter(activity_label(*row) for row in rows)))
                self._stop.wait(self.interval)

    def mean(self, since: float, until: float) -> tuple[int, list[tuple[str, float]]]:
        """(samples in the window, mean backends per activity, busiest first)."""
        window = [c for t, c in self.samples if since <= t <= until]
        total: Counter[str] = Counter()
        for counts in window:
            total.update(counts)
        return len(window), [(label, n / len(window)) for label, n in total.most_common()] if window else []


def activity_label(state: str | None, wait_type: str | None, wait_event: str | None, query: str | None) -> str:
    text = " ".join((query or "").split())
    if state == "active":
        if wait_type == "Lock":
            return f"waiting for a {wait_event} lock: `{text[:48]}`"
        if wait_type is None:
            return f"running (on CPU): `{text[:32]}`"
        return f"waiting {wait_type}/{wait_event}: `{text[:32]}`"
    if state == "idle in transaction":
        return f"idle in transaction (the client's turn), last: `{text[:40]}`"
    return state or "?"


# --- POST /api/v1/orders/ with loadgen ----------------------------------------------------------


def place_scenario(cast: Cast) -> Scenario:
    """Each buyer with their own token, paired with a service, in turn (loadgen's header_pool)."""
    delivery = (date.today() + timedelta(days=14)).isoformat()
    services = cast.services
    pairs = [
        (cast.buyers[k % len(cast.buyers)], services[k % len(services)])
        for k in range(2 * max(len(cast.buyers), len(services)))
    ]
    bodies = [
        json.dumps(
            {
                "service_id": s,
                "requirements": f"Обзор для {b.username}",
                "delivery_date": delivery,
                "selected_option_ids": [],
            }
        )
        for b, s in pairs
    ]
    return Scenario("POST", "/api/v1/orders/", JSON_HEADERS, body_pool=bodies, header_pool=[b.auth for b, _ in pairs])


@dataclass(frozen=True)
class PlaceRun:
    result: Result
    orders_added: int  # order rows before vs after the measured run (warm-up excluded)
    activity_samples: int
    activity: list[tuple[str, float]]


def count_orders(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def measure_placing(
    base: str,
    pid: int,
    url: str,
    cast: Cast,
    *,
    connections: Sequence[int],
    duration: float,
    engine: str,
    helpers: Sequence[int],
) -> list[PlaceRun]:
    runs = []
    database = url.rsplit("/", 1)[1]
    # Opened before the load: the shared server's max_connections may be all taken during it.
    with psycopg.connect(url, autocommit=True) as observer:
        for conns in connections:
            runs.append(place_once(base, pid, cast, observer, database, conns, duration, engine, helpers))
    return runs


def place_once(
    base: str,
    pid: int,
    cast: Cast,
    observer: psycopg.Connection[Any],
    database: str,
    conns: int,
    duration: float,
    engine: str,
    helpers: Sequence[int],
) -> PlaceRun:
    refreshed(base, cast.buyers)
    wait_for_connections(12)
    scenario = place_scenario(cast)
    loadgen.run(base, scenario, connections=conns, duration=1, engine=engine, quiet=False)
    with ActivitySampler(database) as sampler:
        before = count_orders(observer)
        result = loadgen.run(
            base, scenario, connections=conns, duration=duration, engine=engine, server_pid=pid, helper_pids=helpers
        )
        ended = time.monotonic()
        time.sleep(0.5)  # requests wrk abandoned at its deadline still finish on the server
        added = count_orders(observer) - before
    n, activity = sampler.mean(ended - result.seconds, ended)
    print(
        f"  POST orders c={conns}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, {result.errors} errors",
        file=sys.stderr,
    )
    return PlaceRun(result, added, n, activity)


# --- whole lifecycles, each client on one raw HTTP connection -------------------------------------


@dataclass
class LifecycleRun:
    concurrency: int
    seconds: float
    completed: int  # lifecycles whose last step answered before the deadline
    started: int
    failures: Counter[str]
    steps: dict[str, list[float]]
    lifecycle: list[float]
    client_cores: float
    server_cores: float
    postgres_cores: float
    machine_cores: float
    background: float

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.steps.values())


class RawConnection:
    """One keep-alive HTTP/1.1 connection, raw like loadgen's python engine, that also returns the
    answer's body (the lifecycle needs the placed order's id).

    httpx cost the lifecycle client ~1.3-1.8 ms of CPU per request (profiled at 64 clients: as much
    as a server worker spends on it) against ~0.1 ms for loadgen's raw client that drives placing
    alone: on a 2-core machine the lifecycles then paid for their client with the server's cores,
    and the comparison with placing measured the clients as much as the server.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, bytes]:
        """The answer's status and body; a broken connection is opened again for the next request."""
        payload = json.dumps(body).encode()
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(request)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in answer.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                return int(answer[9:12]), await reader.readexactly(length) if length else b""
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            self.close()
            raise

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


LIFECYCLE_RAMP = 1.0  # seconds of lifecycles before their measurement window opens: many lifecycles' length


async def lifecycles(
    base: str, cast: Cast, concurrency: int, duration: float, walk: Sequence[str] = STEPS, *, ramp: float = 0.0
) -> tuple[float, int, int, Counter[str], dict[str, list[float]], list[float]]:
    """`concurrency` clients walking orders through `walk` (STEPS, or some of them), each on a
    connection of its own (`RawConnection`), measured for `duration` s from `ramp` s after they began.

    What is counted (steps, lifecycles whose last step answered, lifecycles begun) is what happened
    within that window; failures, whenever they happened. With a ramp the window opens on clients
    already halfway through lifecycles, as it closes on others: the steady rate. Without, every
    client begins a lifecycle as it opens, and a window's rate lacks the lifecycles in flight when
    it closes (at 64 clients, a lifecycle of 160 ms in a window of 10 s: 1.6 % of them)."""
    delivery = (date.today() + timedelta(days=14)).isoformat()
    buyers = itertools.cycle(cast.buyers)
    services = itertools.cycle(cast.services)
    steps: dict[str, list[float]] = {step: [] for step in walk}
    whole: list[float] = []
    failures: Counter[str] = Counter()
    done = started = 0
    address = urlsplit(base)
    pool = [RawConnection(address.hostname or "127.0.0.1", address.port or 80, 30.0) for _ in range(concurrency)]
    loop = asyncio.get_running_loop()
    opens = loop.time() + ramp
    deadline = opens + duration

    def within() -> bool:
        return opens <= loop.time() <= deadline

    async def step(
        client: RawConnection, name: str, expected: int, path: str, party: Party, body: dict[str, Any]
    ) -> bytes:
        t = time.perf_counter()
        status, answer = await client.post(path, party.auth, body)
        if within():
            steps[name].append(time.perf_counter() - t)
        if status != expected:
            failures[f"{name}: {status}"] += 1
            raise LookupError(name)
        return answer

    async def worker(client: RawConnection, delay: float) -> None:
        nonlocal done, started
        await asyncio.sleep(delay)
        while loop.time() < deadline:
            buyer, service = next(buyers), next(services)
            creator = cast.owner(service)
            started += within()
            t = time.perf_counter()
            try:
                order = json.loads(
                    await step(
                        client,
                        "place",
                        201,
                        "/api/v1/orders/",
                        buyer,
                        {
                            "service_id": service,
                            "requirements": "Ролик 30 секунд",
                            "delivery_date": delivery,
                            "selected_option_ids": [],
                        },
                    )
                )["id"]
                if "accept" in walk:
                    await step(client, "accept", 200, f"/api/v1/orders/{order}/accept/", creator, {})
                await step(
                    client,
                    "deliver",
                    201,
                    f"/api/v1/orders/{order}/deliveries/",
                    creator,
                    {"message": "Готово", "file_ids": []},
                )
                await step(client, "approve", 200, f"/api/v1/orders/{order}/approve/", buyer, {})
                await step(
                    client,
                    "review",
                    201,
                    f"/api/v1/orders/{order}/reviews/",
                    buyer,
                    {"rating": 5, "content": "Отлично"},
                )
            except LookupError:
                continue
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
                failures[type(error).__name__] += 1
                continue
            if within():
                whole.append(time.perf_counter() - t)
                done += 1

    try:
        await asyncio.gather(*(worker(client, k * CONNECT_STAGGER) for k, client in enumerate(pool)))
    finally:
        for client in pool:
            client.close()
    return duration, done, started, failures, steps, whole


def measure_lifecycles(base: str, pid: int, cast: Cast, concurrency: int, duration: float) -> LifecycleRun:
    refreshed(base, [*cast.buyers, *cast.creators])
    wait_for_connections(12)
    uvloop.run(lifecycles(base, cast, concurrency, 1.0))  # warm-up
    background = wait_for_quiet(server_pid=pid)
    snapshot = cpu_snapshot()
    busy = machine_cpu()[0]
    server = process_cpu_seconds(pid)
    cpu = time.process_time()
    wall = time.monotonic()
    seconds, done, started, failures, steps, whole = uvloop.run(
        lifecycles(base, cast, concurrency, duration, ramp=LIFECYCLE_RAMP)
    )
    wall = time.monotonic() - wall
    used = cpu_used(snapshot, cpu_snapshot())
    run = LifecycleRun(
        concurrency,
        seconds,
        done,
        started,
        failures,
        steps,
        whole,
        client_cores=(time.process_time() - cpu) / wall,
        server_cores=(process_cpu_seconds(pid) - server) / wall,
        postgres_cores=sum(c for name, c in used.values() if name == "postgres") / wall,
        machine_cores=(machine_cpu()[0] - busy) / wall,
        background=background,
    )
    print(f"  lifecycles c={concurrency}: {run.per_second:.1f}/s, {sum(failures.values())} failures", file=sys.stderr)
    return run


# --- approve -> creator statistics ----------------------------------------------------------------


@dataclass(frozen=True)
class StatsLag:
    samples: int
    approve: list[float]  # the approve request's latency
    lag: list[float]  # approve's response -> the answer of the first GET that shows completed_orders + 1
    reads: list[int]  # GETs needed until the effect showed (1 = the first read after the response)
    first_read: list[float]  # latency of that first GET
    missing: int  # samples where the effect never showed within 5 s


async def stats_lag(base: str, cast: Cast, samples: int) -> StatsLag:
    creator = cast.creators[0]
    service = creator.services[0]
    delivery = (date.today() + timedelta(days=14)).isoformat()
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as writer,
        httpx.AsyncClient(base_url=base, timeout=30) as reader,
    ):
        limit = asyncio.Semaphore(8)

        async def delivered_order(buyer: Party) -> tuple[Party, int]:
            async with limit:
                order = expect(
                    await writer.post(
                        "/api/v1/orders/",
                        headers=buyer.auth,
                        json={"service_id": service, "delivery_date": delivery, "selected_option_ids": []},
                    ),
                    201,
                )["id"]
                expect(await writer.post(f"/api/v1/orders/{order}/accept/", headers=creator.auth), 200)
                expect(
                    await writer.post(
                        f"/api/v1/orders/{order}/deliveries/", headers=creator.auth, json={"message": "Готово"}
                    ),
                    201,
                )
                return buyer, order

        ready = await asyncio.gather(*(delivered_order(cast.buyers[i % len(cast.buyers)]) for i in range(samples)))
        profile = f"/api/v1/creators/{creator.profile_id}/"
        approve, lag, reads, first, missing = [], [], [], [], 0
        for buyer, order in ready:
            before = expect(await reader.get(profile), 200)["completed_orders"]
            t0 = time.perf_counter()
            expect(await writer.post(f"/api/v1/orders/{order}/approve/", headers=buyer.auth), 200)
            answered = time.perf_counter()
            approve.append(answered - t0)
            for n in itertools.count(1):
                sent = time.perf_counter()
                now = expect(await reader.get(profile), 200)["completed_orders"]
                seen = time.perf_counter()
                if n == 1:
                    first.append(seen - sent)
                if now >= before + 1:
                    lag.append(seen - answered)
                    reads.append(n)
                    break
                if seen - answered > 5:
                    missing += 1
                    break
    return StatsLag(samples, approve, lag, reads, first, missing)


# --- EXPLAIN of the list query ----------------------------------------------------------------


class RecordingDatabase(Database):
    """A Database that remembers the SQL its read functions send, to EXPLAIN exactly that."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.statements: list[tuple[str, list[Any]]] = []

    def snapshot(self, *queries: tuple[str, Sequence[Any]]) -> list[list[dict[str, Any]]]:
        self.statements.extend((sql, list(params)) for sql, params in queries)
        return super().snapshot(*queries)


@dataclass(frozen=True)
class Explained:
    sql: str
    median_ms: float
    p90_ms: float
    plan: str

    @property
    def buffers(self) -> int:
        """Shared buffers the whole statement touched (the plan's top node)."""
        found = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", self.plan)
        return int(found.group(1)) + int(found.group(2) or 0) if found else 0


@dataclass(frozen=True)
class ListPhase:
    parties: list[tuple[str, int, int]]  # label, orders the party takes part in, of which pending
    lists: list[tuple[str, Result]]
    as_found: dict[str, Any]
    explained: list[Explained]
    vacuum_seconds: float
    lists_after: list[tuple[str, Result]]
    explained_after: list[Explained]


def measure_lists(
    base: str,
    pid: int,
    cases: Sequence[tuple[tuple[str, Party], int]],
    engine: str,
    duration: float,
    helpers: Sequence[int],
) -> list[tuple[str, Result]]:
    """GET /api/v1/orders/?status=pending as each (party, connections) case."""
    wait_for_connections(12)
    lists = []
    for (label, party), conns in cases:
        scenario = Scenario("GET", "/api/v1/orders/?status=pending", party.auth)
        loadgen.run(base, scenario, connections=conns, duration=1, engine=engine, quiet=False)
        lists.append(
            (
                f"list pending, {label}",
                loadgen.run(
                    base,
                    scenario,
                    connections=conns,
                    duration=duration,
                    engine=engine,
                    server_pid=pid,
                    helper_pids=helpers,
                ),
            )
        )
        print(f"  {lists[-1][0]} c={conns}: p99 {lists[-1][1].p99_ms:.1f} ms", file=sys.stderr)
    return lists


def vacuum(url: str, table: str) -> float:
    began = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {table}")
    return time.monotonic() - began


def explain_list(url: str, user_id: int, runs: int = 50) -> list[Explained]:
    db = RecordingDatabase(url)
    try:
        read_page(
            db,
            orders_read.list_orders(
                user_id, PageRequest(1, 20), role=None, filters=orders_read.OrderFilters(status="pending")
            ),
        )
    finally:
        db.close()
    found = []
    with psycopg.connect(url, autocommit=True) as conn:
        for sql, params in db.statements:
            timings = []
            for _ in range(runs):
                began = time.perf_counter()
                conn.execute(sql, params).fetchall()
                timings.append(time.perf_counter() - began)
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params))
            shown = sql
            for value in params:
                shown = shown.replace("%s", repr(value) if isinstance(value, str) else str(value), 1)
            found.append(Explained(shown, statistics.median(timings) * 1000, pct(timings, 0.9), plan))
    return found


# --- the append path's own ceilings --------------------------------------------------------------


def locked_insert(url: str, *, clients: int = ceilings.PG_CLIENTS, duration: float) -> ceilings.InsertResult:
    """The raw INSERT+COMMIT in the shape of the library's append: lock timeout, LOCK TABLE ... EXCLUSIVE, NOTIFY."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_locked (id bigserial PRIMARY KEY, v bigint NOT NULL)")
    connections = [psycopg.connect(url) for _ in range(clients)]

    def worker(index: int) -> Callable[[], None]:
        conn, n = connections[index], itertools.count()

        def insert() -> None:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute("LOCK TABLE t_locked IN EXCLUSIVE MODE")
                conn.execute("NOTIFY t_locked")
                conn.execute("INSERT INTO t_locked (v) VALUES (%s)", (index * 10_000_000 + next(n),))

        return insert

    try:
        return ceilings.closed_loop(clients, duration, worker)
    finally:
        for conn in connections:
            conn.close()


def append_ceiling(url: str, *, clients: int = ceilings.PG_CLIENTS, duration: float) -> ceilings.InsertResult:
    """eventsourcing itself: `clients` threads each saving one new Order per save() into the orders store."""
    create_event_tables(url)
    stores = EventStores(url, data_key=DATA_KEY)
    numbers = itertools.count(1)

    def worker(_: int) -> Callable[[], None]:
        def append() -> None:
            order = Order.place(
                number=next(numbers),
                buyer=1,
                buyer_username="buyer",
                creator=2,
                creator_profile=1,
                creator_username="creator",
                service=1,
                service_title="Видеообзор товара",
                price=Decimal(1000),
                options=[],
                total_price=Decimal(1000),
                requirements="Ролик 30 секунд",
                delivery_date="2030-01-01",
                allows_modifications=True,
                at=datetime.now(UTC),
            )
            stores.orders.save(order)

        return append

    try:
        return ceilings.closed_loop(clients, duration, worker)
    finally:
        stores.close()


@dataclass(frozen=True)
class AppendCeilings:
    locked: ceilings.InsertResult
    library: ceilings.InsertResult


def measure_append_path(duration: float) -> AppendCeilings:
    with fresh_database("ugc_bench_appends") as url:
        wait_for_quiet()
        locked = locked_insert(url, duration=duration)
        wait_for_quiet()
        library = append_ceiling(url, duration=duration)
    return AppendCeilings(locked, library)


# --- report ---------------------------------------------------------------------------------------


def lifecycle_rows(runs: list[LifecycleRun], walk: Sequence[str] = STEPS) -> list[str]:
    lines = [
        "| concurrent lifecycles | lifecycles/s | requests/s | lifecycle p50 / p99 ms | "
        + " | ".join(f"{s} p50 / p99 ms" for s in walk)
        + " | failed | CPU cores: client / server / postgres / other | machine (of 2) | other load before |",
        "|---:|---:|---:|---:|" + "---:|" * len(walk) + "---|---|---:|---:|",
    ]
    for r in runs:
        other = r.machine_cores - r.client_cores - r.server_cores - r.postgres_cores
        failed = str(sum(r.failures.values()))
        if r.failures:
            failed += " (" + ", ".join(f"{kind} ×{n}" for kind, n in r.failures.items()) + ")"
        lines.append(
            f"| {r.concurrency} | {r.per_second:.1f} | {r.requests / r.seconds:.0f} "
            f"| {pct(r.lifecycle, 0.5):.0f} / {pct(r.lifecycle, 0.99):.0f} | "
            + " | ".join(f"{pct(r.steps[s], 0.5):.1f} / {pct(r.steps[s], 0.99):.1f}" for s in walk)
            + f" | {failed} | {r.client_cores:.2f} / {r.server_cores:.2f} / {r.postgres_cores:.2f} / {other:.2f} "
            f"| {r.machine_cores:.2f} | {r.background:.2f} |"
        )
    return lines


PROJECTION_LAYOUTS = {
    "external": "projections in a `ugc project` process beside it (UGC_PROJECTIONS=external, DESIGN.md's "
    "production layout; its CPU shows among the busiest other processes as `ugc`)",
    "inline": "projections inline (the server's own runner)",
}


def report(
    *,
    command: str,
    ceiling: ceilings.Ceilings,
    append: AppendCeilings,
    cast: Cast,
    seed: SeedReport,
    listing: ListPhase,
    placing: list[PlaceRun],
    cycles: list[LifecycleRun],
    lag: StatsLag,
    engine: str,
    duration: float,
    background: float,
    began: datetime,
    projections: str,
) -> str:
    started = began.strftime("%Y-%m-%d %H:%M UTC")
    finished = datetime.now(UTC).strftime("%H:%M UTC")
    raw = ceiling.pg_insert.tps
    s = seed.seeded
    t = seed.table
    lists = listing.lists
    found = listing.as_found
    lines = [
        f"## Orders - {started} (finished {finished})",
        "",
        f"`{command}` - {CORES} cores, {platform.platform()}, Python {platform.python_version()}. Server: `ugc serve`, "
        f"1 uvicorn worker (uvloop, httptools, access log off: the UGC_ACCESS_LOG default), "
        f"PostgreSQL (fresh database), production argon2id "
        f"defaults, {PROJECTION_LAYOUTS[projections]}. "
        f"Load: {engine} one thread for the loadgen cases (on the same cores), "
        f"httpx.AsyncClient on uvloop for lifecycles and the statistics lag. {duration:g} s per loadgen "
        f"measurement after a 1 s warm-up. CPU busy before the run (other processes): {background:.2f} cores. "
        f"Server sources: {source_fingerprint()}.",
        "",
        f"Cast, through the API ({cast.seconds:.0f} s): {len(cast.creators)} creators with "
        f"{len(cast.services) // len(cast.creators)} services each, {len(cast.buyers)} buyers and one light buyer, "
        "all registered, verified from the mailed link, logged in.",
        "",
        ceilings.markdown(ceiling),
        "",
        f"### The append path's ceilings ({ceilings.PG_CLIENTS} threads, a connection each, same run)",
        "",
        "| method | throughput | latency |",
        "|---|---:|---|",
        f"| raw INSERT+COMMIT (above) | {raw:,.0f} tx/s | p50 {ceiling.pg_insert.p50_ms:.2f} ms, "
        f"p99 {ceiling.pg_insert.p99_ms:.2f} ms |",
        f"| the same in the library's shape: SET LOCAL lock_timeout; LOCK TABLE ... IN EXCLUSIVE MODE; NOTIFY; "
        f"INSERT; COMMIT | {append.locked.tps:,.0f} tx/s | p50 {append.locked.p50_ms:.2f} ms, "
        f"p99 {append.locked.p99_ms:.2f} ms |",
        f"| eventsourcing `Orders.save(order)`, one new Order per save(), no HTTP, no projections "
        f"| {append.library.tps:,.0f} appends/s | p50 {append.library.p50_ms:.2f} ms, "
        f"p99 {append.library.p99_ms:.2f} ms |",
        "",
        f"### POST /api/v1/orders/ ({len(cast.buyers)} buyers' tokens in turn over {len(cast.services)} services)",
        "",
        ceilings.RESULT_HEADER,
        *(ceilings.result_row("POST /api/v1/orders/", p.result) for p in placing),
        "",
        "| conns | 2xx answers | order rows added during the measurement (every attempt loadgen made) "
        f"| placing ÷ raw INSERT+COMMIT ({raw:,.0f} tx/s) | ÷ pgbench | ÷ library-shaped INSERT | ÷ library appends |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {p.result.connections} | {p.result.requests - p.result.errors:,} | {p.orders_added:,} "
            f"| **{p.result.rps / raw:.3f}** | "
            f"{(p.result.rps / ceiling.pgbench_tps) if ceiling.pgbench_tps else 0:.3f} "
            f"| {p.result.rps / append.locked.tps:.3f} | {p.result.rps / append.library.tps:.3f} |"
            for p in placing
        ),
        "",
        "Where the database backends of the bench database were during each POST run (pg_stat_activity every 50 ms; "
        "mean number of backends per state):",
        "",
    ]
    for p in placing:
        busy = [(label, n) for label, n in p.activity if label != "idle"]
        idle = sum(n for label, n in p.activity if label == "idle")
        lines.append(
            f"* {p.result.connections} connections ({p.activity_samples} samples; {idle:.1f} idle "
            "connections besides): " + "; ".join(f"{label} {n:.2f}" for label, n in busy[:8])
        )
    lines += [
        "",
        "### Whole lifecycles (place → accept → deliver → approve → review, each step a request)",
        "",
        *lifecycle_rows(cycles),
        "",
        f"### GET /api/v1/orders/?status=pending with {t['rows']:,} orders in the read table",
        "",
        f"Seeded: {s.orders:,} orders ({s.events:,} events) appended through the orders event store in "
        f"{s.seconds:.0f} s, batches of 1,000 per save(); statuses {dict(s.by_status)}; the projection "
        f"runner had applied them all {seed.catch_up_seconds:.0f} s after the last append "
        f"({s.events / max(seed.catch_up_seconds, 1):,.0f} events/s behind the appends). Table `orders` "
        f"{t['size']} then.",
        "",
        *(f"* {label}: takes part in {n:,} orders, {pending:,} pending" for label, n, pending in listing.parties),
        "",
        f"**As found** after the catch-up (no manual VACUUM/ANALYZE; at the end of these runs: {found['n_live_tup']:,} "
        f"live and {found['n_dead_tup']:,} dead tuples, last autovacuum {found['last_autovacuum'] or 'never'}, "
        f"last autoanalyze {found['last_autoanalyze'] or 'never'}):",
        "",
        ceilings.RESULT_HEADER,
        *(ceilings.result_row(label, r) for label, r in lists),
        "",
        f"**After `VACUUM (ANALYZE) orders`** ({listing.vacuum_seconds:.1f} s; what autovacuum does some time after "
        "a bulk load - the steady state):",
        "",
        ceilings.RESULT_HEADER,
        *(ceilings.result_row(label, r) for label, r in listing.lists_after),
        "",
    ]
    for title, explained in (("as found", listing.explained), ("after VACUUM (ANALYZE)", listing.explained_after)):
        lines += [
            f"The statements `readmodels/orders.py` `list_orders` sends for the heaviest buyer, {title} "
            "(50 runs each, one connection), with EXPLAIN (ANALYZE, BUFFERS):",
            "",
        ]
        for e in explained:
            lines += [
                f"median {e.median_ms:.2f} ms, p90 {e.p90_ms:.2f} ms, {e.buffers:,} buffers:",
                "",
                "```sql",
                e.sql,
                "```",
                "",
                "```",
                e.plan,
                "```",
                "",
            ]
    lines += [
        f"### Approve → creator statistics ({lag.samples} sequential samples, one creator)",
        "",
        "| measure | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|",
        f"| POST .../approve/ latency | {pct(lag.approve, 0.5):.1f} | {pct(lag.approve, 0.99):.1f} "
        f"| {max(lag.approve) * 1000:.1f} |",
        f"| approve answered → GET /api/v1/creators/{{id}}/ answered showing completed_orders + 1 "
        f"| {pct(lag.lag, 0.5):.1f} | {pct(lag.lag, 0.99):.1f} | {max(lag.lag, default=0) * 1000:.1f} |",
        f"| that first GET's own latency | {pct(lag.first_read, 0.5):.1f} | {pct(lag.first_read, 0.99):.1f} "
        f"| {max(lag.first_read) * 1000:.1f} |",
        "",
        f"The effect showed on the first read after the approve's answer in {lag.reads.count(1)} of {lag.samples} "
        f"samples (reads needed: {dict(Counter(lag.reads))}; never within 5 s: {lag.missing}).",
        "",
        "### Against the targets",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        *(
            f"| placing req/s ÷ raw INSERT+COMMIT tx/s, {p.result.connections} conns | "
            f"{p.result.rps / raw:.3f} ({p.result.rps:,.0f} / {raw:,.0f}) | ≥ 0.25 |"
            for p in placing
        ),
        *(f"| {label} p99, {r.connections} conns, as found | {r.p99_ms:.1f} ms | < 50 ms |" for label, r in lists),
        *(
            f"| {label} p99, {r.connections} conns, after VACUUM (ANALYZE) | {r.p99_ms:.1f} ms | < 50 ms |"
            for label, r in listing.lists_after
        ),
    ]
    lines += ["", "### Reading", "", *reading(ceiling, append, placing, cycles, listing)]
    return "\n".join(lines)


def reading(
    ceiling: ceilings.Ceilings,
    append: AppendCeilings,
    placing: list[PlaceRun],
    cycles: list[LifecycleRun],
    listing: ListPhase,
) -> list[str]:
    """Figures derived from the measurements: CPU per request, where the ceilings are."""
    raw = ceiling.pg_insert.tps
    out = [
        f"* The append path alone: LOCK TABLE ... EXCLUSIVE serialises every append to one application's events "
        f"table, so the library-shaped raw INSERT reaches {append.locked.tps / raw:.2f} of the raw INSERT+COMMIT "
        f"rate and eventsourcing's own `save()` of one new Order {append.library.tps / raw:.2f} of it "
        f"({append.library.tps:,.0f} appends/s, no HTTP, no projections). The server appends the orders that "
        "arrive during one save together in the next (commands/group_commit.py), so placing is not bound by it.",
    ]
    for p in placing:
        r = p.result
        locked = sum(n for label, n in p.activity if label.startswith("waiting for a relation lock"))
        in_tx = sum(n for label, n in p.activity if label.startswith("idle in transaction"))
        out.append(
            f"* POST at {r.connections} conns: on average {locked:.2f} backends were queued on the "
            f"orders_events table lock and {in_tx:.2f} sat idle in a transaction waiting for the server's "
            "Python (the lock holder among them)."
        )
        if r.rps and r.server_cores is not None:
            out.append(
                f"* POST at {r.connections} conns: {r.server_cores / r.rps * 1000:.1f} ms of server CPU and "
                f"{r.postgres_cores / r.rps * 1000:.1f} ms of PostgreSQL CPU per placed order; the machine was "
                f"{r.machine_cores:.2f} of {CORES} cores busy (client {r.client_cores:.2f}). One worker's Python "
                f"is one core at most: {1000 / (r.server_cores / r.rps * 1000):,.0f} req/s would be its ceiling "
                "at this CPU cost per request."
            )
    for c in cycles:
        if c.completed:
            out.append(
                f"* lifecycles at {c.concurrency}: {c.server_cores / (c.requests / c.seconds) * 1000:.1f} ms "
                f"server CPU per request, {c.server_cores / c.per_second * 1000:.0f} ms per lifecycle."
            )
    for title, explained in (("as found", listing.explained), ("after VACUUM (ANALYZE)", listing.explained_after)):
        out.append(
            f"* the heaviest buyer's list, {title}: its two statements take "
            f"{sum(e.median_ms for e in explained):.1f} ms of PostgreSQL time and touch "
            f"{sum(e.buffers for e in explained):,} buffers per request (COUNT(*) visits every pending order of "
            "the caller; the page sorts them unless the plan walks the index in id order)."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000, help="orders seeded before the list is measured")
    parser.add_argument("--creators", type=int, default=16)
    parser.add_argument("--buyers", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per loadgen measurement")
    parser.add_argument("--ceiling-duration", type=float, default=5.0)
    parser.add_argument("--lifecycle-duration", type=float, default=20.0)
    parser.add_argument("--lifecycles", default="1,16", help="concurrent lifecycles, comma-separated")
    parser.add_argument("--samples", type=int, default=200, help="approve -> statistics samples")
    parser.add_argument("--catch-up-timeout", type=float, default=1800.0)
    parser.add_argument("--engine", choices=("wrk", "python"), default=loadgen.DEFAULT_ENGINE)
    parser.add_argument(
        "--projections",
        choices=tuple(PROJECTION_LAYOUTS),
        default="external",
        help="external (default, DESIGN.md's production layout): a `ugc project` process beside "
        "the server; inline: the server's own runner",
    )
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args()
    command = "python bench/run_orders.py" + "".join(f" {a}" for a in sys.argv[1:])
    began = datetime.now(UTC)

    background = wait_for_quiet()
    print("ceilings...", file=sys.stderr)
    ceiling = ceilings.measure(duration=args.ceiling_duration, engine=args.engine, connections=(16, 64))
    print("append-path ceilings...", file=sys.stderr)
    append = measure_append_path(args.ceiling_duration)
    wait_for_connections(40)
    with (
        fresh_database("ugc_bench_orders") as url,
        ugc_server(url, projections=args.projections) as (base, pid, log, helpers),
    ):
        print("cast through the API...", file=sys.stderr)

        async def cast_up() -> Cast:
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                return await build_cast(
                    client, log.parent / "outbox", creators=args.creators, buyers=args.buyers, services_per_creator=2
                )

        cast = uvloop.run(cast_up())
        print(f"seeding {args.orders} orders...", file=sys.stderr)
        seeded = seed_and_catch_up(url, cast, args.orders, batch=1000, timeout=args.catch_up_timeout)

        print("orders list...", file=sys.stderr)
        parties = [("heaviest buyer", cast.buyers[0]), ("light buyer", cast.light), ("a creator", cast.creators[1])]
        list_parties = [(label, *pending_orders(url, p.user_id)) for label, p in parties]
        refreshed(base, [p for _, p in parties])
        # 16 connections as the target says; one connection for the heaviest buyer shows the bare service time.
        lists = measure_lists(
            base, pid, [*((p, 16) for p in parties), (parties[0], 1)], args.engine, args.duration, helpers
        )
        as_found = table_stats(url, "orders")
        wait_for_quiet()
        explained = explain_list(url, cast.buyers[0].user_id)
        print("VACUUM (ANALYZE) orders, then the list again...", file=sys.stderr)
        vacuumed = vacuum(url, "orders")
        lists_after = measure_lists(
            base, pid, [(parties[0], 16), (parties[2], 16)], args.engine, args.duration, helpers
        )
        wait_for_quiet()
        explained_after = explain_list(url, cast.buyers[0].user_id)
        listing = ListPhase(list_parties, lists, as_found, explained, vacuumed, lists_after, explained_after)

        print("POST /api/v1/orders/...", file=sys.stderr)
        placing = measure_placing(
            base, pid, url, cast, connections=(16, 64), duration=args.duration, engine=args.engine, helpers=helpers
        )
        print("lifecycles...", file=sys.stderr)
        cycles = [
            measure_lifecycles(base, pid, cast, int(c), args.lifecycle_duration) for c in args.lifecycles.split(",")
        ]
        print("approve -> creator statistics...", file=sys.stderr)
        refreshed(base, [*cast.buyers, *cast.creators])
        wait_for_quiet(server_pid=pid)
        lag = uvloop.run(stats_lag(base, cast, args.samples))
    section = report(
        command=command,
        ceiling=ceiling,
        append=append,
        cast=cast,
        seed=seeded,
        listing=listing,
        placing=placing,
        cycles=cycles,
        lag=lag,
        engine=args.engine,
        duration=args.duration,
        background=background,
        began=began,
        projections=args.projections,
    )
    print(section)
    if not args.no_record:
        record(section, "orders", began)


if __name__ == "__main__":
    main()
