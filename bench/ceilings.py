"""The two ceilings of this machine, measured in one run, against which the API figures are read.

(a) HTTP: `hello_app.py` (Starlette, one constant JSON route) under uvicorn with uvloop + httptools and
    one worker, loaded by the same generator (`loadgen.py`) as the API. Measured without the access
    log (the pure ceiling) and with it (as `ugc serve` runs: uvicorn's access log at level info), and
    once with the Python engine to show what a Python client can and cannot saturate.
(b) PostgreSQL: 8 client threads, each with its own psycopg connection, doing single-row
    `INSERT INTO t(v) VALUES (...)` + COMMIT for a fixed time -> transactions/s; and `pgbench -c 8`
    with the same one-INSERT script when pgbench is installed.

Run standalone:  .venv/bin/python bench/ceilings.py [--duration 5] [--engine wrk|python]
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import loadgen
import psycopg
from common import ROOT, free_port, fresh_database, server, undisturbed
from loadgen import Result, Scenario

PG_CLIENTS = 8


@dataclass(frozen=True)
class InsertResult:
    tps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Ceilings:
    engine: str
    hello: dict[int, Result]  # connections -> result, access log off
    hello_access_log: Result
    hello_python: Result | None  # the Python engine on the same app (None when it is the engine)
    pg_insert: InsertResult
    pgbench_tps: float | None
    pg_settings: dict[str, str]
    pg_insert_other: float = 0.0  # cores other processes used during the INSERT measurement
    pgbench_other: float = 0.0


def hello_world(connections: int, duration: float, *, engine: str, access_log: bool = False) -> Result:
    """Requests/s of one uvicorn worker serving the hello app."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "hello_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--workers", "1", "--log-level", "info" if access_log else "warning"]
    if not access_log:
        argv.append("--no-access-log")
    with tempfile.TemporaryDirectory() as tmp, server(argv, port, log=Path(tmp) / "hello.log") as proc:
        url = f"http://127.0.0.1:{port}/"
        loadgen.run(url, Scenario(path="/"), connections=connections, duration=1, engine=engine, quiet=False)
        return loadgen.run(url, Scenario(path="/"), connections=connections, duration=duration,
                           engine=engine, server_pid=proc.pid, database="")


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else 0.0


def closed_loop(clients: int, duration: float, worker: Callable[[int], Callable[[], None]]) -> InsertResult:
    """`clients` threads, each calling its own `worker(index)` back to back for `duration` s: ops/s, p50, p99."""
    operations = [worker(i) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def run(index: int) -> None:
        start.wait()
        while time.monotonic() < stop_at[0]:
            began = time.perf_counter()
            operations[index]()
            latencies[index].append(time.perf_counter() - began)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + duration
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join(timeout=duration + 60)
    elapsed = time.monotonic() - began
    every = sorted(x for mine in latencies for x in mine)
    return InsertResult(len(every) / elapsed, _pct(every, 0.50), _pct(every, 0.99))


def pg_insert(url: str, *, clients: int = PG_CLIENTS, duration: float = 5.0) -> InsertResult:
    """Single-row INSERT + COMMIT from `clients` threads with a connection each, for `duration` s."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, v bigint NOT NULL)")
    connections = [psycopg.connect(url) for _ in range(clients)]

    def worker(index: int) -> Callable[[], None]:
        conn, numbers = connections[index], itertools.count(index * 10_000_000 + 1)

        def insert() -> None:
            conn.execute("INSERT INTO t (v) VALUES (%s)", (next(numbers),))
            conn.commit()

        return insert

    try:
        return closed_loop(clients, duration, worker)
    finally:
        for conn in connections:
            conn.close()


def pgbench(url: str, *, clients: int = PG_CLIENTS, duration: float = 5.0) -> float | None:
    """pgbench's tps for the same one-INSERT transaction, or None without pgbench."""
    binary = shutil.which("pgbench")
    if binary is None:
        return None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, v bigint NOT NULL)")
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write("\\set v random(1, 1000000000)\nINSERT INTO t (v) VALUES (:v);\n")
        script.flush()
        completed = subprocess.run(
            [binary, "-n", "-c", str(clients), "-j", "2", "-T", str(max(1, round(duration))), "-f", script.name, url],
            capture_output=True, text=True, timeout=duration + 60, check=True)
    found = re.search(r"tps = ([\d.]+)", completed.stdout)
    return float(found.group(1)) if found else None


def postgres_settings(url: str) -> dict[str, str]:
    names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "max_connections")
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


def measure(*, duration: float = 5.0, connections: tuple[int, ...] = (16, 64),
            engine: str = loadgen.DEFAULT_ENGINE) -> Ceilings:
    hello = {c: hello_world(c, duration, engine=engine) for c in connections}
    with_log = hello_world(max(connections), duration, engine=engine, access_log=True)
    python = hello_world(max(connections), duration, engine="python") if engine != "python" else None
    with fresh_database("ugc_bench_ceiling") as url:
        settings = postgres_settings(url)
        name = url.rsplit("/", 1)[1]
        insert, insert_other = undisturbed(lambda: pg_insert(url, duration=duration), name)
        bench_tps, bench_other = undisturbed(lambda: pgbench(url, duration=duration), name)
    return Ceilings(engine, hello, with_log, python, insert, bench_tps, settings, insert_other, bench_other)


def _cores(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def result_row(label: str, r: Result) -> str:
    rps = f"{r.rps:,.0f}" if r.rps >= 100 else f"{r.rps:.1f}"
    if r.other_cores > loadgen.DISTURBED:
        label += " (disturbed)"
    cpu = " / ".join(_cores(v) for v in (r.client_cores, r.server_cores, r.postgres_cores, r.other_cores))
    return (f"| {label} | {r.connections} | {rps} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.requests} "
            f"| {cpu} | {_cores(r.machine_cores)} | {_cores(r.background_cores)} "
            f"| {', '.join(f'{name} {cores:.2f}' for name, cores in r.top_others) or '–'} |")


RESULT_HEADER = (
    "| case | conns | req/s | p50 ms | p99 ms | errors | requests | CPU cores: client / server / postgres / other "
    "| machine (of 2) | other load before | busiest other processes (cores) |\n"
    "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")


def markdown(c: Ceilings) -> str:
    rows = [result_row(f"hello-world ({c.engine})", r) for r in c.hello.values()]
    rows.append(result_row(f"hello-world + access log ({c.engine})", c.hello_access_log))
    if c.hello_python is not None:
        rows.append(result_row("hello-world (python client)", c.hello_python))
    pg = [f"| psycopg, {PG_CLIENTS} threads, INSERT+COMMIT | {c.pg_insert.tps:,.0f} tx/s "
          f"| p50 {c.pg_insert.p50_ms:.2f} ms, p99 {c.pg_insert.p99_ms:.2f} ms | {c.pg_insert_other:.2f} |"]
    if c.pgbench_tps is not None:
        pg.append(f"| pgbench -c {PG_CLIENTS} -j 2, one INSERT | {c.pgbench_tps:,.0f} tx/s | | {c.pgbench_other:.2f} |")
    settings = ", ".join(f"{k}={v}" for k, v in c.pg_settings.items())
    return "\n".join([
        "### HTTP ceiling (hello-world, 1 uvicorn worker, uvloop + httptools)", "",
        RESULT_HEADER, *rows, "",
        "### PostgreSQL ceiling (single-row INSERT + COMMIT)", "",
        "| method | throughput | latency | other processes during it (cores) |", "|---|---:|---|---:|", *pg, "",
        f"PostgreSQL: {settings}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--engine", choices=("wrk", "python"), default=loadgen.DEFAULT_ENGINE)
    args = parser.parse_args()
    print(markdown(measure(duration=args.duration, engine=args.engine)))


if __name__ == "__main__":
    main()
