"""Overload: what clients see when far more of them arrive at once than `ugc serve` can serve.

`ugc serve --workers 2` on a fresh PostgreSQL database with small pools (`UGC_DB_POOL_MAX=1`, the
others 1: at most 18 connections for both workers), then bursts of one-shot clients, each opening
its own connection at the same moment and sending one request:

* `fast`: GET /api/v1/users/me/ (a read on a thread and the blocking pool), the database healthy;
* `slow`: the same while another session holds `LOCK TABLE users` for `--lock` seconds (a database
  that does not answer: every read waits its `lock_timeout` holding its pooled connection), then
  GET /api/v1/notifications/ (a read on the event loop's pool) behind a lock on `notifications`;
* `sign-ins`: POST /api/auth/token/ (argon2id at its production cost, two hashes at a time);
* `sockets`: WebSockets on /ws/notifications/ opened by many users at once and held.

Each client comes from an address of its own (`X-Forwarded-For`, believed from 127.0.0.1), as a
crowd would, so the sign-in throttle, which counts per address, does not turn them away.

For each: the status counts, p50 / p99 / max latency, the workers' peak RSS and threads (sampled
every 50 ms), /healthz and /readyz probed every 200 ms during the burst, and one request right
after it (recovery; after the lock has gone, for `slow`); a /readyz 503's body names the check that
failed. The same run's ceilings come from bench/ceilings.py.

`--sqlite` serves a SQLite file instead (no `slow` bursts: they are PostgreSQL locks).

Run:  .venv/bin/python bench/overload.py --clients 2000 --slow-clients 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import websockets
from common import ROOT, free_port, fresh_database, record, server

PASSWORD = "correct-horse-battery"
POOLS = {"UGC_DB_POOL_MAX": "1", "UGC_DB_ASYNC_POOL_MAX": "1", "UGC_STORE_POOL_MAX": "1",
         "UGC_ORDERS_STORE_POOL_MAX": "1"}


@dataclass
class Burst:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    retry_after: Counter[str] = field(default_factory=Counter)
    bodies: Counter[str] = field(default_factory=Counter)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # status -> (first, last) answer, s

    def add(self, status: str, elapsed: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(elapsed)
        first, last = self.spans.get(status, (elapsed, elapsed))
        self.spans[status] = (min(first, elapsed), max(last, elapsed))

    def line(self) -> str:
        ordered = sorted(self.latencies)

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

        spans = {k: f"{a:.1f}-{b:.1f}" for k, (a, b) in sorted(self.spans.items())}
        return (f"statuses {dict(sorted(self.statuses.items()))}; p50 {at(0.5):.0f} ms, p99 {at(0.99):.0f} ms, "
                f"max {at(1.0):.0f} ms; answered between (s) {spans}; Retry-After {dict(self.retry_after)}; "
                f"503 bodies {dict(self.bodies)}")


async def one_request(port: int, path: str, headers: dict[str, str], timeout: float,
                      body: bytes = b"") -> tuple[str, float, str, str]:
    """(status or error name, seconds, Retry-After, body of a 503) of one request on its own connection:
    a GET, or a POST of the JSON `body`."""
    started = time.monotonic()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    method = "POST" if body else "GET"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\r\n".encode() + body)
            raw = await reader.read(-1)
            writer.close()
    except TimeoutError:
        return "client timeout", time.monotonic() - started, "", ""
    except OSError as error:
        return type(error).__name__, time.monotonic() - started, "", ""
    elapsed = time.monotonic() - started
    if not raw:
        return "closed", elapsed, "", ""
    top, _, body = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")[1]
    retry = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("retry-after:")), "")
    return status, elapsed, retry, body.decode(errors="replace")[:120] if status == "503" else ""


class Sampler(threading.Thread):
    """Peak RSS (MB, all of the server's processes together) and threads of its workers, every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.rss_mb, self.threads, self.running = pid, 0.0, 0, True

    def run(self) -> None:
        while self.running:
            pids = [self.pid, *children(self.pid)]
            rss = threads = 0
            for pid in pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                rss += int(fields["VmRSS"].split()[0])
                threads = max(threads, int(fields["Threads"]))
            self.rss_mb, self.threads = max(self.rss_mb, rss / 1024), max(self.threads, threads)
            time.sleep(0.05)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(p) for p in text.split()]
    return found + [g for c in found for g in children(c)]


async def health_probe(port: int, path: str, stop: asyncio.Event, out: Burst) -> None:
    while not stop.is_set():
        status, elapsed, retry, body = await one_request(port, path, {}, 30)
        out.add(status, elapsed)
        if status == "503":
            out.bodies[body] += 1  # for /readyz: which check failed
        await asyncio.sleep(0.2)


async def burst(port: int, pid: int, path: str, headers: dict[str, str], clients: int, timeout: float,
                slowness: threading.Thread | None = None, bodies: tuple[bytes, ...] = (b"",)) -> str:
    """The burst's line (client n POSTs `bodies[n % len(bodies)]`, or GETs); the request after it
    is sent once `slowness` has ended."""
    sampler = Sampler(pid)
    sampler.start()
    result, health, ready, stop = Burst(), Burst(), Burst(), asyncio.Event()
    probes = [asyncio.create_task(health_probe(port, "/healthz", stop, health)),
              asyncio.create_task(health_probe(port, "/readyz", stop, ready))]
    started = time.monotonic()
    for status, elapsed, retry, answer in await asyncio.gather(
        *(one_request(port, path, headers | {"X-Forwarded-For": f"10.9.{n // 250}.{n % 250 + 1}"}, timeout,
                      bodies[n % len(bodies)]) for n in range(clients))
    ):
        result.add(status, elapsed)
        if status == "503":
            result.retry_after[retry] += 1
            result.bodies[answer] += 1
    took = time.monotonic() - started
    stop.set()
    await asyncio.gather(*probes)
    sampler.running = False
    sampler.join()
    if slowness is not None:
        await asyncio.to_thread(slowness.join)
    after, after_s, _, _ = await one_request(port, path, headers, timeout, bodies[0])
    return (f"{clients} clients, all done in {took:.1f} s: {result.line()}\n"
            f"  /healthz during it: {health.line()}\n"
            f"  /readyz during it: {ready.line()}\n"
            f"  peak RSS of the server's processes {sampler.rss_mb:.0f} MB, peak threads of one {sampler.threads}; "
            f"the next request: {after} in {after_s * 1000:.0f} ms")


async def sockets(port: int, pid: int, tokens: list[str], per_user: int, hold: float) -> str:
    sampler = Sampler(pid)
    sampler.start()
    closes: Counter[str] = Counter()
    opened: list[websockets.ClientConnection] = []

    async def connect(token: str) -> None:
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/notifications/?token={token}", open_timeout=30)
        except Exception as error:  # noqa: BLE001 - a refused handshake is counted, whatever it was
            closes[type(error).__name__] += 1
            return
        opened.append(ws)

    await asyncio.gather(*(connect(t) for t in tokens for _ in range(per_user)))
    await asyncio.sleep(hold)
    for ws in opened:
        if ws.close_code is not None:
            closes[f"closed {ws.close_code}"] += 1
    open_now = sum(1 for ws in opened if ws.close_code is None)
    health, _, _, _ = await one_request(port, "/healthz", {}, 30)
    await asyncio.gather(*(ws.close() for ws in opened))
    sampler.running = False
    sampler.join()
    return (f"{len(tokens)} users x {per_user} sockets: {open_now} open after {hold:.0f} s, refused/closed "
            f"{dict(closes)}; peak RSS {sampler.rss_mb:.0f} MB, peak threads {sampler.threads}; /healthz {health}")


def users(base: str, count: int) -> tuple[list[str], list[str]]:
    """The names and access tokens of `count` new users."""
    import httpx

    names, tokens = [], []
    with httpx.Client(base_url=base, timeout=60) as client:
        for n in range(count):
            name = f"ov{os.getpid()}x{n}"
            body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
                    "first_name": "Иван", "last_name": "Петров"}
            assert client.post("/api/auth/register/", json=body).status_code == 201
            answer = client.post("/api/auth/token/", json={"username": name, "password": PASSWORD})
            tokens.append(answer.json()["access"])
            names.append(name)
    return names, tokens


def hold_lock(url: str, table: str, seconds: float) -> threading.Thread:
    """Another session holds `table` exclusively for `seconds`: the database stops answering its readers."""
    ready = threading.Event()

    def run() -> None:
        with psycopg.connect(url) as conn:
            conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            ready.set()
            time.sleep(seconds)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    return thread


def ceilings() -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ceilings.py")], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    return (done.stdout or done.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--slow-clients", type=int, default=500)
    parser.add_argument("--lock", type=float, default=8.0, help="seconds the slow database holds its lock")
    parser.add_argument("--socket-users", type=int, default=40)
    parser.add_argument("--sign-ins", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=120.0, help="a client's patience, seconds")
    parser.add_argument("--no-ceilings", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--sqlite", action="store_true", help="serve a SQLite file, not PostgreSQL")
    parser.add_argument("--database-prefix", default="hc_overload", help="of the PostgreSQL database's name")
    args = parser.parse_args()
    began = datetime.now(UTC)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [f"# overload, {began:%Y-%m-%d %H:%M} UTC, main at {commit.strip()}", "",
             f"`python bench/overload.py {' '.join(sys.argv[1:])}`; `ugc serve --workers 2`, "
             f"{'SQLite' if args.sqlite else 'PostgreSQL'}, pools {POOLS}", ""]
    with tempfile.TemporaryDirectory(prefix="hc-overload-") as scratch, (
        nullcontext(f"sqlite:///{scratch}/ugc.sqlite3") if args.sqlite else fresh_database(args.database_prefix)
    ) as url:
        port = free_port()
        var = Path(scratch)
        env = os.environ | POOLS | {
            "UGC_DATABASE_URL": url, "UGC_VAR_DIR": str(var),  # argon2 at its production cost
            "UGC_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            "UGC_DATA_KEY": "bench-data-key-that-is-long-enough-9876543210",
        }
        subprocess.run([sys.executable, "-m", "ugc.cli", "migrate"], env=env, check=True, cwd=ROOT)
        argv = [sys.executable, "-m", "ugc.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        with server(argv, port, env=env, log=var / "server.log") as process:
            names, tokens = users(f"http://127.0.0.1:{port}", args.socket_users)
            me = {"Authorization": f"Bearer {tokens[0]}"}
            path = "/api/v1/users/me/"
            lines.append("- fast: " + asyncio.run(burst(port, process.pid, path, me, args.clients, args.timeout)))
            print(lines[-1], flush=True)
            sign_ins = tuple(json.dumps({"username": name, "password": PASSWORD}).encode() for name in names)
            lines.append("- sign-ins (POST /api/auth/token/, argon2id 3 passes, 64 MiB): " + asyncio.run(
                burst(port, process.pid, "/api/auth/token/", {}, args.sign_ins, args.timeout, bodies=sign_ins)))
            print(lines[-1], flush=True)
            locked = [("users", path), ("notifications", "/api/v1/notifications/")]
            for table, slow_path in [] if args.sqlite else locked:
                locker = hold_lock(url, table, args.lock)
                lines.append(f"- slow, GET {slow_path} ({table} locked {args.lock:.0f} s): " + asyncio.run(
                    burst(port, process.pid, slow_path, me, args.slow_clients, args.timeout, locker)))
                print(lines[-1], flush=True)
            lines.append("- sockets: " + asyncio.run(sockets(port, process.pid, tokens, 40, 3.0)))
            print(lines[-1], flush=True)
            failures = [line for line in (var / "server.log").read_text(errors="replace").splitlines()
                        if "Traceback" in line or " 500 " in line]
            lines.append(f"- server log: {len(failures)} tracebacks or 500s")
    if not args.no_ceilings:
        lines += ["", "Same run's ceilings:", "", "```", ceilings(), "```"]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record(text, "overload", began)


if __name__ == "__main__":
    main()
