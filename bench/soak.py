"""A soak: mixed traffic for a long while against the production layout, memory watched throughout.

The layout of DESIGN.md's production column on this machine: `ugc serve --workers 2` (uvloop,
httptools, access log off), two `ugc project` processes (sharing the projections' leases), a private
`redis-server` for the pushes, PostgreSQL (a fresh database), production argon2id costs.

The traffic is what people do, mixed in fixed proportions (KINDS below) and paced to a steady rate:
registering and logging in, reading the services listing and a service, placing orders and taking
them through the lifecycle (accept, deliver, approve, review; some cancelled), reading order lists
and orders, chatting (send, read) and reading notifications. Virtual users are coroutines on one
httpx.AsyncClient (uvloop) in this process, on the same two cores. Every answer is checked against
the status its action expects: anything else — a 5xx, a 409, a transport error — is an error.

Printed (and written to bench/results/soak-<date>.md): requests by kind, errors, req/s, p50/p99, the
RSS of every process (the master, each worker, each projector, Redis) at the start (after the
warm-up), at the middle, at the end and every `--every` s, with each process's growth per minute
(least squares) in the first and in the second half; the fill of every bounded cache of the workers
and projectors at the same moments (they run through bench/memory_probe.py, the same `ugc` command
answering SIGUSR1 with it), so that growth is read against the caches that hold it; CPU per process;
the ceilings of ceilings.py (hello-world HTTP at 64 connections, raw INSERT+COMMIT) measured right
after, in the same run. `--trace-frames N` adds tracemalloc's account of what grew in each process
(slower, more RSS: for finding a cause; see bench/results/2026-12-02-2130-soak-traced.md).

The warm-up (180 s by default) is there to fill the listing's remembered answers (512 per worker,
api/listing.py), which the mix fills in a minute or two and which hold most of a worker's growth;
the order aggregates (the library's cache, 5,000 per worker) fill with every order the lifecycle
touches and take far longer than a soak to reach their bound: their fill is in the report.

Usage:  .venv/bin/python bench/soak.py [--duration 600] [--rate 150] [--users 16] [--no-ceilings]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import ceilings
import httpx
import loadgen
import memory_probe
import psycopg
import redis
import uvloop
from common import (
    PG_ADMIN_URL,
    ROOT,
    VENV_BIN,
    background,
    free_port,
    fresh_database,
    machine_cpu,
    process_cpu_seconds,
    server,
    wait_for_quiet,
)
from run_auth import PASSWORD, register_body, source_fingerprint
from run_orders import Cast, Party, build_cast, expect, wait_for_connections
from run_realtime import private_redis
from upload_memory import status_kib

from readmodels.tracking import lagging
from ugc.platform.database import Database
from ugc.platform.store import EventStores

RESULTS_DIR = ROOT / "bench" / "results"
# Memory is sampled with no request in flight, this long after the last answer: an argon2id hash in
# progress holds 64 MiB, and a sample taken during one says more about that moment than about growth.
QUIET = 0.5
CORES = os.cpu_count() or 1

# What virtual users do, and how often (weights). A lifecycle step with no order in the state it
# needs places an order instead, so the lifecycle keeps itself fed.
KINDS: dict[str, float] = {
    "services list": 18,
    "service detail": 14,
    "place order": 8,
    "accept": 5,
    "deliver": 5,
    "approve": 4,
    "review": 3,
    "cancel": 1,
    "orders list": 6,
    "order detail": 4,
    "chat send": 8,
    "chat read": 4,
    "notifications": 8,
    "users/me": 3,
    # argon2id at the production cost takes ~0.1 s of a core per hash or check: a few per second at most.
    "login": 0.6,
    "register": 0.3,  # followed by the new user's login (counted as "login")
}


# --- processes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    database_url: str
    base: str
    master: int
    workers: list[int]
    projectors: list[int]
    redis: int
    var_dir: Path


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def workers_of(master: int) -> list[int]:
    """uvicorn's worker processes (spawned: `spawn_main` in their command line)."""
    return sorted(c for c in children(master) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes())


def wait_healthy(base: str, master: int, workers: int, timeout: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=2) as client:
        while True:
            try:
                healthy = client.get("/healthz").status_code == 200
            except httpx.TransportError:
                healthy = False
            pids = workers_of(master)
            if healthy and len(pids) == workers:
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(f"`ugc serve` not healthy with {workers} workers after {timeout:.0f} s ({pids})")
            time.sleep(0.2)


@contextmanager
def production_layout(database_url: str, redis_url: str, redis_pid: int, *, ttl: int,
                      trace_frames: int = 0) -> Iterator[Layout]:
    """`ugc serve --workers 2` and two `ugc project`, each run through bench/memory_probe.py (the same
    `ugc` command, answering SIGUSR1 with its caches' fill; with `trace_frames`, tracemalloc too)."""
    with tempfile.TemporaryDirectory(prefix="ugc-soak-") as var_dir, ExitStack() as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UGC_")}  # production argon2 etc.
        env |= {"UGC_DATABASE_URL": database_url, "UGC_VAR_DIR": var_dir, "UGC_REDIS_URL": redis_url,
                "UGC_SECRET_KEY": secrets.token_urlsafe(48), "UGC_PROJECTIONS": "external",
                "UGC_ACCESS_TOKEN_TTL": str(ttl)}
        logs = Path(var_dir)
        (logs / "probe").mkdir()
        env |= {"SOAK_PROBE_DIR": str(logs / "probe"), "SOAK_PROBE_TRACE": str(trace_frames)}
        ugc = [str(VENV_BIN / "python"), str(ROOT / "bench" / "memory_probe.py")]
        port = free_port()
        argv = [*ugc, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        try:
            master = stack.enter_context(server(argv, port, env=env, log=logs / "server.log", ready_timeout=120))
            base = f"http://127.0.0.1:{port}"
            workers = wait_healthy(base, master.pid, 2)
            projectors = [stack.enter_context(background([*ugc, "project"], env=env, log=logs / f"project-{i}.log"))
                          for i in (1, 2)]
            layout = Layout(database_url, base, master.pid, workers, [p.pid for p in projectors], redis_pid, logs)
            # The reference data is in the log from the start: once it is applied, a projector runs (on
            # a busy machine that takes a while, and registering before answers 503: read model lagging).
            caught_up(layout, timeout=120)
            yield layout
        except BaseException:
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log.name} tail ---", file=sys.stderr)
                print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
            raise


# --- memory --------------------------------------------------------------------------------------


def labelled(layout: Layout) -> dict[str, int]:
    """Process label -> pid, the workers as they are now (a replaced worker shows as a new pid)."""
    pids = {"master": layout.master}
    pids |= {f"worker {i + 1}": pid for i, pid in enumerate(workers_of(layout.master))}
    pids |= {f"projector {i + 1}": pid for i, pid in enumerate(layout.projectors)}
    return pids | {"redis-server": layout.redis}


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the measured run began
    label: str
    rss_kib: dict[str, int]  # process label -> VmRSS
    pids: dict[str, int]
    caches: dict[str, list[dict[str, Any]]]  # process label -> its caches' fill (memory_probe.cache_fill)


PROBED = ("worker", "projector")  # the processes of ours asked for their caches' fill


def sample(layout: Layout, at: float, label: str) -> Sample:
    """Every process's RSS, then (RSS first: the probe allocates) the caches' fill of ours."""
    pids = labelled(layout)
    rss = {}
    for name, pid in pids.items():
        try:
            rss[name] = status_kib(pid, "VmRSS")
        except (OSError, LookupError):
            rss[name] = 0
    probed = {name: pid for name, pid in pids.items() if name.startswith(PROBED)}
    return Sample(at, label, rss, pids, probe(layout.var_dir / "probe", probed))


def probe(directory: Path, pids: dict[str, int], timeout: float = 120.0) -> dict[str, list[dict[str, Any]]]:
    """Signal each process to write its probe files (memory_probe.py) and read its caches' fill."""
    seen = {name: len(list(directory.glob(f"{pid}-*.caches.json"))) for name, pid in pids.items()}
    for pid in pids.values():
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    fill = {}
    for name, pid in pids.items():
        path = directory / f"{pid}-{seen[name] + 1}.caches.json"
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.05)  # written in one call, but not atomically
        fill[name] = json.loads(path.read_text()) if path.exists() else []
    return fill


def slope(samples: list[Sample], name: str, since: float) -> float:
    """The least-squares growth of `name`'s RSS over the samples from `since` s on, in MiB/min."""
    points = [(s.at / 60, s.rss_kib.get(name, 0) / 1024) for s in samples if s.at >= since]
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


# --- the shared PostgreSQL ----------------------------------------------------------------------


class SharedServer:
    """What happens to the shared PostgreSQL meanwhile (others' tests use it too): its free
    connection slots, its restarts, and the times it refused a connection, every `interval` s."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.free: list[int] = []
        self.refused: list[str] = []
        self.started: list[datetime] = []  # postmaster start times seen, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SharedServer:
        self._look()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._look()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._look()

    def _look(self) -> None:
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT current_setting('max_connections')::int "
                    "- current_setting('superuser_reserved_connections')::int - count(*), pg_postmaster_start_time() "
                    "FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()
        except psycopg.Error as error:
            self.refused.append(str(error).strip().splitlines()[-1][:100])
            return
        assert row is not None
        self.free.append(int(row[0]))
        if not self.started or self.started[-1] != row[1]:
            self.started.append(row[1])

    def markdown(self) -> list[str]:
        lines = [f"Free connection slots of the shared PostgreSQL (max_connections, other people's tests use it "
                 f"too), every {self.interval:g} s: min {min(self.free, default=0)}, median "
                 f"{sorted(self.free)[len(self.free) // 2] if self.free else 0}; "
                 f"{len(self.refused)} of {len(self.free) + len(self.refused)} looks were refused a connection"
                 + (f" (`{Counter(self.refused).most_common(1)[0][0]}`)" if self.refused else "") + "."]
        if len(self.started) > 1:
            lines.append("PostgreSQL was restarted during the run (by someone else), at "
                         + ", ".join(f"{t:%H:%M:%S} UTC" for t in self.started[1:]) + ".")
        return lines


def unavailable_lines(log: Path) -> Counter[str]:
    """The server's "database unavailable" warnings (each a 503), by message."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if "database unavailable:" in line:
            found[line.split("database unavailable:", 1)[1].strip()[:100]] += 1
    return found


# --- the traffic ---------------------------------------------------------------------------------


@dataclass
class Deal:
    order: int
    buyer: Party
    creator: Party


@dataclass
class World:
    """What virtual users share: the cast, conversations, and orders by the state they are in."""

    cast: Cast
    conversations: list[tuple[int, Party, Party]]
    rng: random.Random
    pending: deque[Deal] = field(default_factory=deque)
    in_progress: deque[Deal] = field(default_factory=deque)
    delivered: deque[Deal] = field(default_factory=deque)
    completed: deque[Deal] = field(default_factory=deque)
    orders: list[Deal] = field(default_factory=list)
    registered: int = 0
    prefix: str = field(default_factory=lambda: f"s{secrets.token_hex(3)}_")


@dataclass
class Tally:
    """Answers by kind: latencies of the expected ones, errors of the rest."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def ok(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {what}")

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())


class Failed(Exception):
    """An answer other than the one the action expects (already tallied)."""


class Traffic:
    def __init__(self, client: httpx.AsyncClient, world: World) -> None:
        self.client = client
        self.world = world
        self.tally = Tally()
        self.delivery = (date.today() + timedelta(days=14)).isoformat()
        kinds = list(KINDS)
        self._choose: Callable[[], str] = lambda: world.rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
        self._open = asyncio.Event()
        self._open.set()
        self._in_flight = 0
        self.paused = 0.0  # seconds

    async def pause(self) -> float:
        """Hold every virtual user before its next action and return once none is in flight."""
        began = time.monotonic()
        self._open.clear()
        while self._in_flight:
            await asyncio.sleep(0.01)
        return began

    def resume(self, began: float) -> None:
        self.paused += time.monotonic() - began
        self._open.set()

    async def call(self, kind: str, method: str, path: str, expected: int, party: Party | None = None,
                   body: Any = None) -> Any:
        headers = party.auth if party else None
        began = time.perf_counter()
        try:
            response = await self.client.request(method, path, headers=headers, json=body)
        except httpx.HTTPError as error:
            self.tally.error(kind, f"{type(error).__name__}: {error}")
            raise Failed from None
        took = time.perf_counter() - began
        if response.status_code != expected:
            self.tally.error(kind, f"{method} {path} -> {response.status_code} {response.text[:200]}")
            raise Failed
        self.tally.ok(kind, took)
        return response.json()

    async def act(self) -> None:
        await self._open.wait()
        kind = self._choose()
        self._in_flight += 1
        try:
            await getattr(self, "_" + kind.replace(" ", "_").replace("/", "_"))()
        except Failed:
            pass
        finally:
            self._in_flight -= 1

    # reads

    async def _services_list(self) -> None:
        rng = self.world.rng
        query = rng.choice(["", f"?creator={rng.choice(self.world.cast.creators).profile_id}", "?search=обзор",
                            "?ordering=-created_at", "?min_price=1100"])
        await self.call("services list", "GET", f"/api/v1/services/{query}", 200)

    async def _service_detail(self) -> None:
        await self.call("service detail", "GET", f"/api/v1/services/{self.world.rng.choice(self.world.cast.services)}/",
                        200)

    async def _orders_list(self) -> None:
        party = self.world.rng.choice(self.world.cast.buyers + self.world.cast.creators)
        await self.call("orders list", "GET", "/api/v1/orders/", 200, party)

    async def _order_detail(self) -> None:
        if not self.world.orders:
            return await self._place_order()
        deal = self.world.rng.choice(self.world.orders)
        await self.call("order detail", "GET", f"/api/v1/orders/{deal.order}/", 200, deal.buyer)

    async def _notifications(self) -> None:
        party = self.world.rng.choice(self.world.cast.buyers + self.world.cast.creators)
        await self.call("notifications", "GET", "/api/v1/notifications/", 200, party)

    async def _users_me(self) -> None:
        await self.call("users/me", "GET", "/api/v1/users/me/", 200, self.world.rng.choice(self.world.cast.buyers))

    async def _chat_read(self) -> None:
        number, a, _ = self.world.rng.choice(self.world.conversations)
        await self.call("chat read", "GET", f"/api/v1/conversations/{number}/messages/", 200, a)

    # writes

    async def _chat_send(self) -> None:
        number, a, b = self.world.rng.choice(self.world.conversations)
        sender = a if self.world.rng.random() < 0.5 else b
        await self.call("chat send", "POST", f"/api/v1/conversations/{number}/messages/", 201, sender,
                        {"message": f"Сообщение {secrets.token_hex(4)}"})

    async def _login(self) -> None:
        party = self.world.rng.choice(self.world.cast.buyers)
        await self.call("login", "POST", "/api/auth/token/", 200, None,
                        {"username": party.username, "password": PASSWORD})

    async def _register(self) -> None:
        self.world.registered += 1
        name = f"{self.world.prefix}{self.world.registered}"
        await self.call("register", "POST", "/api/auth/register/", 201, None, register_body(name))
        await self.call("login", "POST", "/api/auth/token/", 200, None, {"username": name, "password": PASSWORD})

    async def _place_order(self) -> None:
        buyer = self.world.rng.choice(self.world.cast.buyers)
        service = self.world.rng.choice(self.world.cast.services)
        order = await self.call("place order", "POST", "/api/v1/orders/", 201, buyer, {
            "service_id": service, "requirements": "Ролик 30 секунд", "delivery_date": self.delivery,
            "selected_option_ids": []})
        deal = Deal(order["id"], buyer, self.world.cast.owner(service))
        self.world.pending.append(deal)
        self.world.orders.append(deal)

    async def _step(self, kind: str, source: deque[Deal], target: deque[Deal] | None, path: str, expected: int,
                    actor: Callable[[Deal], Party], body: Any = None) -> None:
        if not source:
            return await self._place_order()
        deal = source.popleft()  # this coroutine alone acts on it now: no 409 between virtual users
        try:
            await self.call(kind, "POST", f"/api/v1/orders/{deal.order}/{path}/", expected, actor(deal), body)
        except Failed:
            source.append(deal)
            raise
        if target is not None:
            target.append(deal)

    async def _accept(self) -> None:
        await self._step("accept", self.world.pending, self.world.in_progress, "accept", 200, lambda d: d.creator, {})

    async def _deliver(self) -> None:
        await self._step("deliver", self.world.in_progress, self.world.delivered, "deliveries", 201,
                         lambda d: d.creator, {"message": "Готово", "file_ids": []})

    async def _approve(self) -> None:
        await self._step("approve", self.world.delivered, self.world.completed, "approve", 200, lambda d: d.buyer, {})

    async def _review(self) -> None:
        await self._step("review", self.world.completed, None, "reviews", 201, lambda d: d.buyer,
                         {"rating": self.world.rng.randint(3, 5), "content": "Отлично"})

    async def _cancel(self) -> None:
        await self._step("cancel", self.world.pending, None, "cancel", 200, lambda d: d.buyer,
                         {"reason": "Передумал"})


async def drive(traffic: Traffic, *, users: int, rate: float, seconds: float) -> float:
    """`users` virtual users, together paced to `rate` actions/s, for `seconds`; the wall time taken."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    stop_at = began + seconds
    interval = users / rate

    async def user(offset: float) -> None:
        due = began + offset
        while (now := loop.time()) < stop_at:
            if due > now:
                await asyncio.sleep(due - now)
            await traffic.act()
            due = max(due + interval, loop.time() - interval)  # behind: no burst to catch up

    await asyncio.gather(*(user(interval * i / users) for i in range(users)))
    return loop.time() - began


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    tally: Tally
    seconds: float
    samples: list[Sample]
    cpu: dict[str, float]  # process label -> cores over the measured run
    peaks: dict[str, int]  # process label -> VmHWM at the end (KiB): the highest RSS since it started
    client_cores: float
    machine_cores: float
    background_cores: float
    warmup: Tally
    cast_seconds: float
    catch_up_seconds: float
    orders: Counter[str]
    paused: float  # seconds the traffic stood still for the samples
    unavailable: Counter[str]  # the server's "database unavailable" warnings, by message
    traced: str  # with --trace-frames: what tracemalloc saw grow in each process, start to end


async def soak(layout: Layout, args: argparse.Namespace) -> Run:
    limits = httpx.Limits(max_connections=args.users, max_keepalive_connections=args.users)
    async with httpx.AsyncClient(base_url=layout.base, timeout=30, limits=limits) as client:
        print("cast through the API...", file=sys.stderr)
        began = time.monotonic()
        cast = await build_cast(client, layout.var_dir / "outbox", creators=args.creators, buyers=args.buyers,
                                services_per_creator=2)
        conversations = []
        for i, buyer in enumerate(cast.buyers):
            creator = cast.creators[i % len(cast.creators)]
            started = expect(await client.post("/api/v1/conversations/", headers=buyer.auth,
                                               json={"recipient_id": creator.user_id}), 201)
            conversations.append((int(started["id"]), buyer, creator))
        cast_seconds = time.monotonic() - began
        world = World(cast, conversations, random.Random(args.seed))

        print(f"warm-up {args.warmup:g} s...", file=sys.stderr)
        warm = Traffic(client, world)
        await drive(warm, users=args.users, rate=args.rate, seconds=args.warmup)
        background = wait_for_quiet(limit=20)

        traffic = Traffic(client, world)
        samples = [sample(layout, 0.0, "start")]
        pids = samples[0].pids
        cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        busy, client_cpu = machine_cpu()[0], time.process_time()
        print(f"soak {args.duration:g} s at {args.rate:g} req/s...", file=sys.stderr)
        run = asyncio.ensure_future(drive(traffic, users=args.users, rate=args.rate, seconds=args.duration))
        wall = time.monotonic()
        middle = args.duration / 2
        moments = sorted({middle, *(args.every * k for k in range(1, int(args.duration // args.every) + 1))}
                         - {args.duration})
        for moment in moments:
            done, _ = await asyncio.wait({run}, timeout=max(0.0, moment - (time.monotonic() - wall)))
            if done:
                break
            paused = await traffic.pause()
            await asyncio.sleep(QUIET)
            at = time.monotonic() - wall
            samples.append(sample(layout, at, "middle" if moment == middle else f"{at / 60:.1f} min"))
            traffic.resume(paused)
            print(f"  {at:.0f} s: {traffic.tally.requests} requests, {sum(traffic.tally.errors.values())} errors, "
                  "RSS " + ", ".join(f"{k} {v / 1024:.0f}" for k, v in samples[-1].rss_kib.items()) + " MiB",
                  file=sys.stderr)
        seconds = await run - traffic.paused
        await asyncio.sleep(QUIET)
        elapsed = time.monotonic() - wall
        samples.append(sample(layout, elapsed, "end"))
        cpu = {name: (process_cpu_seconds(pid) - cpu_before[name]) / elapsed
               for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
        peaks = {name: status_kib(pid, "VmHWM") for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
        client_cores = (time.process_time() - client_cpu) / elapsed
        machine_cores = (machine_cpu()[0] - busy) / elapsed
        traced = traced_growth(layout.var_dir / "probe", samples[0], samples[-1]) if args.trace_frames else ""

    began = time.monotonic()
    caught_up(layout, timeout=120)
    orders = Counter({"placed": len(world.orders), "pending": len(world.pending),
                      "in progress": len(world.in_progress), "delivered": len(world.delivered),
                      "completed, not reviewed": len(world.completed)})
    return Run(traffic.tally, seconds, samples, cpu, peaks, client_cores, machine_cores, background, warm.tally,
               cast_seconds, time.monotonic() - began, orders, traffic.paused,
               unavailable_lines(layout.var_dir / "server.log"), traced)


def traced_growth(directory: Path, first: Sample, last: Sample) -> str:
    """tracemalloc's account of each probed process's growth between two samples (memory_probe.diff)."""
    found = []
    for name, pid in first.pids.items():
        snapshots = sorted(directory.glob(f"{pid}-*.snapshot"), key=lambda p: int(p.stem.split("-")[1]))
        if len(snapshots) > 1 and last.pids.get(name) == pid:
            found.append(f"#### {name} (pid {pid}), {first.label} -> {last.label}\n\n```\n"
                         f"{memory_probe.diff(snapshots[0], snapshots[-1])}\n```")
    return "\n\n".join(found)


def caught_up(layout: Layout, timeout: float) -> None:
    """Wait until the read models have applied the whole log (the projectors kept up)."""
    db, stores = Database(layout.database_url), EventStores(layout.database_url)
    try:
        heads = stores.heads()
        deadline = time.monotonic() + timeout
        while behind := lagging(db, heads):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read models still behind after {timeout:.0f} s: {behind} < {heads}")
            time.sleep(0.2)
    finally:
        stores.close()
        db.close()


# --- the report ----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def report(run: Run, args: argparse.Namespace, command: str, began: datetime,
           ceiling: ceilings.Ceilings | str | None, shared: SharedServer) -> str:
    t = run.tally
    every = [x for v in t.latencies.values() for x in v]
    errors = sum(t.errors.values())
    start, end = run.samples[0], run.samples[-1]
    middle = next((s for s in run.samples if s.label == "middle"), None)
    lines = [
        f"## Soak — {began:%Y-%m-%d %H:%M} UTC (finished {datetime.now(UTC):%H:%M} UTC)", "",
        f"`{command}` — {CORES} cores, {platform.platform()}, Python {platform.python_version()}. "
        "Layout: `ugc serve --workers 2` (uvloop, httptools, access log off), 2 × `ugc project` (sharing the "
        "projections' leases), a private `redis-server` for the pushes, PostgreSQL (fresh database), production "
        f"argon2id costs. Load: {args.users} virtual users (httpx.AsyncClient on uvloop, in the bench process, on the "
        f"same cores) paced to {args.rate:g} actions/s in the mix below, after a {args.warmup:g} s warm-up; cast: "
        f"{args.creators} creators with 2 services each, {args.buyers} buyers (registered, verified from the mailed "
        f"link, logged in, {run.cast_seconds:.0f} s), one conversation per buyer. CPU other processes used before the "
        f"run: {run.background_cores:.2f} cores. Server sources: {source_fingerprint()}.", "",
        "| seconds | requests | errors | req/s | p50 ms | p99 ms | max ms | CPU cores: client / machine (of 2) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {run.seconds:.0f} | {t.requests:,} | **{errors}** | {t.requests / run.seconds:,.1f} "
        f"| {pct(every, 0.5):.1f} | {pct(every, 0.99):.1f} | {max(every, default=0) * 1000:.0f} "
        f"| {run.client_cores:.2f} / {run.machine_cores:.2f} |", "",
        "### Requests by kind", "",
        "| kind | weight | requests | errors | req/s | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in sorted(set(t.latencies) | set(t.errors), key=lambda k: -len(t.latencies.get(k, []))):
        v = t.latencies.get(kind, [])
        lines.append(f"| {kind} | {KINDS.get(kind, '–')} | {len(v) + t.errors[kind]:,} | {t.errors[kind]} "
                     f"| {(len(v) + t.errors[kind]) / run.seconds:.1f} | {pct(v, 0.5):.1f} | {pct(v, 0.99):.1f} "
                     f"| {max(v, default=0) * 1000:.0f} |")
    if t.examples:
        lines += ["", "Errors (first ones):", "", *(f"* `{e}`" for e in t.examples)]
    lines += ["", *shared.markdown()]
    if run.unavailable:
        lines += ["", "The server's `database unavailable` warnings (each answered 503):", "",
                  *(f"* {n} × `{message}`" for message, n in run.unavailable.most_common(5))]
    lines += ["", "Lifecycle at the end: " + ", ".join(f"{k} {v}" for k, v in run.orders.items())
              + f"; the read models had applied the whole log {run.catch_up_seconds:.1f} s after the last request. "
              f"Warm-up: {run.warmup.requests:,} requests, "
              f"{sum(run.warmup.errors.values())} errors.", ""]
    names = list(start.rss_kib)
    lines += ["### RSS per process (MiB)", "",
              f"Each sample is taken with the traffic held and no request in flight for {QUIET:g} s (an argon2id "
              f"hash in progress holds 64 MiB for its moment); the {len(run.samples) - 2} holds took "
              f"{run.paused:.1f} s in all, left out of req/s. Peak: VmHWM at the end, the most the process ever "
              "held resident.", "",
              f"| process | start (after warm-up) | middle ({middle.at:.0f} s) | end | end − start | peak "
              "| CPU cores over the run |" if middle else "| process | start | middle | end | end − start | peak "
              "| CPU cores over the run |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        mid = mib(middle.rss_kib.get(name, 0)) if middle else "–"
        replaced = " (pid changed!)" if end.pids.get(name) != start.pids.get(name) else ""
        lines.append(f"| {name}{replaced} | {mib(start.rss_kib[name])} | {mid} | {mib(end.rss_kib.get(name, 0))} "
                     f"| {(end.rss_kib.get(name, 0) - start.rss_kib[name]) / 1024:+.1f} "
                     f"| {mib(run.peaks.get(name, 0))} | {run.cpu.get(name, 0.0):.2f} |")
    lines += ["", "Every sample (MiB):", "",
              "| at | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for s in run.samples:
        lines.append(f"| {s.at:.0f} s ({s.label}) | " + " | ".join(mib(s.rss_kib.get(n, 0)) for n in names) + " |")
    half = end.at / 2
    lines += ["", "Growth (least squares over the samples, MiB/min), in the first half and in the second half "
              "of the run:", "", "| process | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|",
              "| first half | " + " | ".join(f"{slope([s for s in run.samples if s.at <= half], n, 0):+.2f}"
                                          for n in names) + " |",
              "| second half | " + " | ".join(f"{slope(run.samples, n, half):+.2f}" for n in names) + " |"]
    lines += cache_lines(run.samples, middle)
    if run.traced:
        lines += ["", "### What tracemalloc saw grow (start to end)", "", run.traced]
    if isinstance(ceiling, ceilings.Ceilings):
        lines += ["", "Measured right after the soak:", "", ceilings.markdown(ceiling)]
    elif ceiling is not None:
        lines += ["", f"The ceilings could not be measured: `{ceiling}`."]
    return "\n".join(lines) + "\n"


def cache_lines(samples: list[Sample], middle: Sample | None) -> list[str]:
    """The fill of every non-empty bounded cache of each probed process at the start, middle and end."""
    start, end = samples[0], samples[-1]
    lines = ["", "### Bounded caches (entries / bound)", "",
             "Each probed process's caches at the samples (bench/memory_probe.py: the `eventsourcing` aggregate "
             "caches per application and every `ugc.platform.cache.LRU`, by owner); empty ones left out.", "",
             "| process | cache | start | middle | end | bound |", "|---|---|---:|---:|---:|---:|"]
    for name, caches in end.caches.items():
        bounds = {c["cache"]: c["bound"] for c in caches}  # two caches of one owner class add up
        for key, bound in bounds.items():
            if not cache_entries(end, name, key):
                continue
            fill = [cache_entries(s, name, key) for s in (start, middle, end)]
            lines.append(f"| {name} | {key} | " + " | ".join(f"{n:,}" if n is not None else "–" for n in fill)
                         + f" | {bound * sum(c['cache'] == key for c in caches):,} |")
    return lines


def cache_entries(at: Sample | None, process: str, cache: str) -> int | None:
    """The entries of `process`'s caches labelled `cache` at a sample (None: not probed then)."""
    found = [c["entries"] for c in (at.caches.get(process, []) if at else []) if c["cache"] == cache]
    return sum(found) if found else None


def result_path(began: datetime) -> Path:
    """A new file under bench/results/: soak-<date>.md, or with the time when that one exists."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"soak-{began:%Y-%m-%d}.md"
    return path if not path.exists() else RESULTS_DIR / f"soak-{began:%Y-%m-%d-%H%M}.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of measured traffic")
    parser.add_argument("--warmup", type=float, default=180.0,
                        help="seconds of the mix before the measured run (fills the listing answers' cache)")
    parser.add_argument("--rate", type=float, default=150.0, help="actions per second, all users together")
    parser.add_argument("--users", type=int, default=16, help="virtual users (concurrent connections)")
    parser.add_argument("--creators", type=int, default=8)
    parser.add_argument("--buyers", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1, help="of the actions' random choices")
    parser.add_argument("--ceiling-duration", type=float, default=5.0)
    parser.add_argument("--engine", choices=("wrk", "python"), default=loadgen.DEFAULT_ENGINE)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--trace-frames", type=int, default=0,
                        help="tracemalloc in every process of ours, this many frames deep, and its account of "
                        "what grew in the report (slows the server and grows its RSS: for finding a cause)")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the ceilings (quick trials)")
    parser.add_argument("--no-record", action="store_true", help="print only; write no file under bench/results/")
    args = parser.parse_args()
    command = "python bench/soak.py" + "".join(f" {a}" for a in sys.argv[1:])
    began = datetime.now(UTC)

    wait_for_connections(50)
    ttl = int(args.warmup + args.duration) + 1800  # the cast's tokens outlive the run
    with fresh_database("ugc_bench_soak") as url, private_redis() as redis_url:
        redis_pid = redis_server_pid(redis_url)
        layout_of = production_layout(url, redis_url, redis_pid, ttl=ttl, trace_frames=args.trace_frames)
        with layout_of as layout, SharedServer() as shared:
            run = uvloop.run(soak(layout, args))
    # After the soak, so that a long wait for a quiet machine (ceilings.py measures only then) or a
    # failure there costs no soak.
    ceiling: ceilings.Ceilings | str | None = None
    if not args.no_ceilings:
        print("ceilings...", file=sys.stderr)
        try:
            ceiling = ceilings.measure(duration=args.ceiling_duration, engine=args.engine, connections=(64,))
        except Exception as error:  # the soak's figures stand without them
            ceiling = f"{type(error).__name__}: {error}"
    section = report(run, args, command, began, ceiling, shared)
    print(section)
    if not args.no_record:
        path = result_path(began)
        path.write_text(section, encoding="utf-8")
        print(f"written to {path.relative_to(ROOT)}", file=sys.stderr)
    if sum(run.tally.errors.values()):
        sys.exit(1)


def redis_server_pid(url: str) -> int:
    """The pid of the redis-server listening on `url`'s port (it reports it itself)."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    return int(info["process_id"])


if __name__ == "__main__":
    main()
