"""Authentication throughput of `ugc serve`, read against this machine's ceilings, in one run.

Starts its own `ugc serve` (one worker, default argon2id cost) on a fresh PostgreSQL database (or on
SQLite with --sqlite) and measures, with the load generator of loadgen.py:

* POST /api/auth/register/  - every request a new unique username (argon2id hash + event append +
                              read-your-writes wait for the projection);
* POST /api/auth/token/     - a pool of pre-registered users, correct passwords (argon2id verify);
* GET  /api/v1/users/me/    - one pre-fetched access token (JWT check + one read-model SELECT);
* GET  /healthz/            - the same server without database or JSON body work, to split the
                              framework/logging cost from the per-request work;

at 1, 16 and 64 connections, plus the cost of one argon2id hash and verify with argon2.PasswordHasher()
defaults, and the ceilings of ceilings.py (hello-world HTTP, PostgreSQL INSERT+COMMIT). It prints
everything as markdown, with users/me req/s / hello-world req/s and token req/s against
cores / (verify time).

Usage:  .venv/bin/python bench/run_auth.py [--sqlite] [--duration 10] [--engine wrk|python]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import ceilings
import loadgen
import psycopg
from argon2 import PasswordHasher
from common import (
    DATA_KEY,
    ROOT,
    VENV_BIN,
    background,
    free_port,
    fresh_database,
    process_cpu_seconds,
    server,
    undisturbed,
    wait_for_quiet,
)
from loadgen import Result, Scenario

from ugc.config import is_postgres

PASSWORD = "bench-Password-1"
JSON_HEADERS = {"Content-Type": "application/json"}
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Argon2Cost:
    hash_ms: float  # median wall time of one hash
    verify_ms: float  # median wall time of one verify
    verify_cpu_ms: float  # CPU of one verify (all its lanes' threads)
    parallel_verifies_per_s: float  # verifies/s from CORES threads verifying at once
    crowded_verifies_per_s: float  # verifies/s from CROWD threads at once (the server's worker threads)
    params: str


CROWD = 40  # anyio's default worker-thread limit: how many hashes one server process may run at once


def verifies_per_s(hasher: PasswordHasher, encoded: str, threads: int, each: int) -> float:
    """Verifies/s when `threads` threads verify `each` times at once."""

    def verify_some() -> None:
        for _ in range(each):
            hasher.verify(encoded, PASSWORD)

    began = time.monotonic()
    workers = [threading.Thread(target=verify_some) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * each / (time.monotonic() - began)


def argon2_cost(samples: int = 10) -> Argon2Cost:
    hasher = PasswordHasher()
    encoded = hasher.hash(PASSWORD)

    def one_by_one() -> tuple[list[float], list[float], list[float]]:
        hashes, verifies, cpus = [], [], []
        for _ in range(samples):
            began = time.perf_counter()
            hasher.hash(PASSWORD)
            hashes.append(time.perf_counter() - began)
            began, cpu = time.perf_counter(), time.process_time()
            hasher.verify(encoded, PASSWORD)
            verifies.append(time.perf_counter() - began)
            cpus.append(time.process_time() - cpu)
        return hashes, verifies, cpus

    (hashes, verifies, cpus), _ = undisturbed(one_by_one, "")
    parallel, _ = undisturbed(lambda: verifies_per_s(hasher, encoded, CORES, 40 // CORES), "")
    crowded, _ = undisturbed(lambda: verifies_per_s(hasher, encoded, CROWD, 1), "")
    params = f"time_cost={hasher.time_cost}, memory_cost={hasher.memory_cost} KiB, parallelism={hasher.parallelism}"
    return Argon2Cost(statistics.median(hashes) * 1000, statistics.median(verifies) * 1000,
                      statistics.median(cpus) * 1000, parallel, crowded, params)


def source_fingerprint() -> str:
    """A hash of the server's Python sources: which code a result was measured on (others edit it too)."""
    digest = hashlib.sha256()
    for package in ("ugc", "api", "commands", "projections", "readmodels"):
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def post_json(base: str, path: str, body: dict[str, str], timeout: float = 60.0) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=JSON_HEADERS, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def register_body(username: str) -> dict[str, str]:
    return {"username": username, "email": f"{username}@example.com", "password": PASSWORD,
            "first_name": "Bench", "last_name": "User"}


def register_pool(base: str, size: int, prefix: str) -> list[str]:
    """Register `size` users through the API (8 at a time); their usernames."""
    names = [f"{prefix}{i}" for i in range(size)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda name: post_json(base, "/api/auth/register/", register_body(name))[0], names))
    if any(status != 201 for status in statuses):
        raise RuntimeError(f"pool registration failed: {statuses}")
    return names


@contextmanager
def ugc_server(database_url: str, *, projections: str = "inline", workers: int = 1) -> Iterator[
        tuple[str, int, Path, list[int]]]:
    """`ugc serve --workers N` on a free port with a fresh var dir; (base URL, pid, log path, pids of its helpers).

    `projections="external"` is the production layout of DESIGN.md: the server only serves, and
    a `ugc project` process beside it runs the projections (its log: project.log beside the server's).
    """
    with tempfile.TemporaryDirectory(prefix="ugc-bench-") as var_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UGC_")}  # default argon2 cost etc.
        env |= {"UGC_DATABASE_URL": database_url, "UGC_VAR_DIR": var_dir, "UGC_SECRET_KEY": secrets.token_urlsafe(48),
                "UGC_DATA_KEY": DATA_KEY, "UGC_PROJECTIONS": projections}
        port = free_port()
        log = Path(var_dir) / "server.log"
        argv = [str(VENV_BIN / "ugc"), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers)]
        try:
            with server(argv, port, env=env, log=log, ready_timeout=120) as proc, \
                    (background([str(VENV_BIN / "ugc"), "project"], env=env, log=log.with_name("project.log"))
                     if projections == "external" else nullcontext()) as projector:
                yield f"http://127.0.0.1:{port}", proc.pid, log, [projector.pid] if projector else []
        except BaseException:
            for tail in (log, log.with_name("project.log")):
                if tail.exists():
                    print(f"--- {tail.name} tail ---", file=sys.stderr)
                    print("\n".join(tail.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
            raise


@dataclass(frozen=True)
class AtRest:
    server_cores: float  # CPU of the idle server process
    db_transactions_per_s: float | None  # PostgreSQL transactions/s of the idle server's database


def db_transactions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def at_rest(url: str, pid: int, seconds: float = 12.0) -> AtRest:
    """What the server does with no request at all (PostgreSQL flushes idle backends' counters
    within 10 s, hence the long window)."""
    wait_for_quiet(server_pid=pid)
    postgres = is_postgres(url)
    xacts, cpu, began = db_transactions(url) if postgres else 0, process_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    rate = (db_transactions(url) - xacts - 1) / elapsed if postgres else None  # less our own first read
    return AtRest((process_cpu_seconds(pid) - cpu) / elapsed, rate)


def measure_api(database_url: str, *, duration: float, slow_duration: float, connections: tuple[int, ...],
                engine: str, pool_size: int, attempts: int = 3) -> tuple[AtRest, list[tuple[str, Result]]]:
    results: list[tuple[str, Result]] = []
    database = urlsplit(database_url).path.lstrip("/") if is_postgres(database_url) else ""
    with ugc_server(database_url) as (base, pid, _log, _helpers):
        rest = at_rest(database_url, pid)

        def load(label: str, scenario: Scenario, conns: int, *, seconds: float = duration,
                 warm_up: bool = False) -> None:
            if warm_up:
                loadgen.run(base, scenario, connections=conns, duration=1, engine=engine, quiet=False)
            results.append((label, loadgen.run(base, scenario, connections=conns, duration=seconds,
                                               engine=engine, server_pid=pid, database=database,
                                               attempts=attempts)))
            print(f"  {label} c={conns}: {results[-1][1].rps:,.1f} req/s", file=sys.stderr)

        body = json.dumps(register_body("b{n}"))
        for conns in connections:
            load("register", Scenario("POST", "/api/auth/register/", JSON_HEADERS, unique_body=body), conns,
                 seconds=slow_duration)

        prefix = f"pool{secrets.token_hex(3)}_"
        users = register_pool(base, pool_size, prefix)
        bodies = [json.dumps({"username": name, "password": PASSWORD}) for name in users]
        for conns in connections:
            load("token", Scenario("POST", "/api/auth/token/", JSON_HEADERS, body_pool=bodies), conns,
                 seconds=slow_duration)

        status, tokens = post_json(base, "/api/auth/token/", {"username": users[0], "password": PASSWORD})
        assert status == 200, status
        me = Scenario("GET", "/api/v1/users/me/", {"Authorization": f"Bearer {tokens['access']}"})
        for conns in connections:
            load("users/me", me, conns, warm_up=True)
        load("healthz (no DB)", Scenario("GET", "/healthz/"), max(connections), warm_up=True)
    return rest, results


def report(*, backend: str, engine: str, duration: float, slow_duration: float, argon: Argon2Cost,
           ceiling: ceilings.Ceilings, rest: AtRest, api: list[tuple[str, Result]], background_cores: float) -> str:
    lines = [
        f"## UGC auth benchmark - {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}", "",
        f"Machine: {CORES} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Load generator: {engine} (one client thread, on the same {CORES} cores as the server). "
        f"Server: `ugc serve`, 1 uvicorn worker, {backend}. {slow_duration:g} s per register/token measurement, "
        f"{duration:g} s per users/me and healthz measurement. "
        f"CPU busy before the run (other processes): {background_cores:.2f} cores. "
        f"Server sources (sha256 of ugc/ api/ commands/ projections/ readmodels/ *.py): {source_fingerprint()}.", "",
        ceilings.markdown(ceiling), "",
        "### argon2id (argon2.PasswordHasher() defaults)", "",
        f"{argon.params}: hash {argon.hash_ms:.1f} ms, verify {argon.verify_ms:.1f} ms wall "
        f"({argon.verify_cpu_ms:.0f} ms CPU: the lanes run on threads); {CORES} threads verifying at once: "
        f"{argon.parallel_verifies_per_s:.1f} verifies/s; {CROWD} threads at once (anyio's worker limit): "
        f"{argon.crowded_verifies_per_s:.1f} verifies/s.", "",
        f"### API ({backend})", "",
        ceilings.RESULT_HEADER,
        *(ceilings.result_row(label, r) for label, r in api), "",
        f"Server at rest (no requests, 12 s): {rest.server_cores:.3f} cores"
        + (f", {rest.db_transactions_per_s:.0f} PostgreSQL transactions/s." if rest.db_transactions_per_s is not None
           else "."), "",
        "### Ratios", "",
        "| ratio | value |", "|---|---:|",
    ]
    by = {(label, r.connections): r for label, r in api}
    for conns, hello in ceiling.hello.items():
        me = by.get(("users/me", conns))
        if me:
            lines.append(f"| users/me ÷ hello-world, {conns} conns | {me.rps / hello.rps:.3f} "
                         f"({me.rps:,.0f} / {hello.rps:,.0f}) |")
    me_max = by.get(("users/me", ceiling.hello_access_log.connections))
    if me_max:
        lines.append(f"| users/me ÷ hello-world with access log, {me_max.connections} conns "
                     f"| {me_max.rps / ceiling.hello_access_log.rps:.3f} |")
    wall_bound = CORES * 1000 / argon.verify_ms
    cpu_bound = CORES * 1000 / argon.verify_cpu_ms
    for (label, conns), r in by.items():
        if label in ("token", "register"):
            lines.append(f"| {label} req/s, {conns} conns ÷ (cores / verify wall time = {wall_bound:.1f}/s) "
                         f"| {r.rps / wall_bound:.2f} |")
    for (label, conns), r in by.items():
        if label == "token":
            lines.append(f"| token req/s, {conns} conns ÷ (cores / verify CPU time = {cpu_bound:.1f}/s) "
                         f"| {r.rps / cpu_bound:.2f} |")
            lines.append(f"| token req/s, {conns} conns ÷ measured verifies/s, {CORES} threads "
                         f"({argon.parallel_verifies_per_s:.1f}/s) | {r.rps / argon.parallel_verifies_per_s:.2f} |")
            lines.append(f"| token req/s, {conns} conns ÷ measured verifies/s, {CROWD} threads "
                         f"({argon.crowded_verifies_per_s:.1f}/s) | {r.rps / argon.crowded_verifies_per_s:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="run the server on SQLite instead of PostgreSQL")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per users/me and healthz measurement")
    parser.add_argument("--slow-duration", type=float, default=20.0,
                        help="seconds per register and token measurement (argon2id-bound: latencies of seconds)")
    parser.add_argument("--ceiling-duration", type=float, default=5.0, help="seconds per ceiling measurement")
    parser.add_argument("--connections", default="1,16,64",
                        help="comma-separated concurrency levels (the hello-world ceiling skips 1)")
    parser.add_argument("--engine", choices=("wrk", "python"), default=loadgen.DEFAULT_ENGINE)
    parser.add_argument("--attempts", type=int, default=3,
                        help="measure a case up to this many times while other processes disturb it")
    parser.add_argument("--pool", type=int, default=64, help="pre-registered users for the token case")
    args = parser.parse_args()
    connections = tuple(int(c) for c in args.connections.split(","))

    background = wait_for_quiet()
    print("argon2id cost...", file=sys.stderr)
    argon = argon2_cost()
    wait_for_quiet()
    print("ceilings...", file=sys.stderr)
    ceiling = ceilings.measure(duration=args.ceiling_duration, engine=args.engine,
                               connections=tuple(c for c in connections if c > 1) or connections)
    print("API...", file=sys.stderr)
    with ExitStack() as stack:
        if args.sqlite:
            var = stack.enter_context(tempfile.TemporaryDirectory(prefix="ugc-bench-sqlite-"))
            url, backend = f"sqlite:///{var}/ugc.sqlite3", "SQLite"
        else:
            url, backend = stack.enter_context(fresh_database()), "PostgreSQL (fresh database)"
        rest, api = measure_api(url, duration=args.duration, slow_duration=args.slow_duration, connections=connections,
                          engine=args.engine, pool_size=args.pool, attempts=args.attempts)
    print(report(backend=backend, engine=args.engine, duration=args.duration, slow_duration=args.slow_duration,
                 argon=argon, ceiling=ceiling,
                 rest=rest, api=api, background_cores=background))


if __name__ == "__main__":
    main()
