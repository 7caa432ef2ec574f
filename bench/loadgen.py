"""A reusable HTTP load generator: N keep-alive connections for a fixed time -> requests/s, p50, p99, errors.

Two engines drive the same `Scenario`:

* `wrk` (default when `wrk` is on PATH): one wrk thread, a generated Lua script for bodies that
  change per request (unique usernames, a pool of users) and for a machine-readable summary.
* `python`: a raw HTTP/1.1 keep-alive client on asyncio (uvloop when installed), one coroutine per
  connection. It is here to show how much a Python client costs: on this 2-core machine it needs a
  whole core to approach what one uvicorn worker serves, so it is not the default.

The client shares the machine's cores with the server under test, so every result also reports the
CPU the client used, the CPU the server process used (when its pid is given) and how busy the whole
machine was: a result is only a server figure when the client was not the one short of CPU.

Run standalone:  .venv/bin/python bench/loadgen.py http://127.0.0.1:8000/healthz/ -c 64 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import common
import uvloop
from common import cpu_snapshot, cpu_used, describe, machine_cpu, postgres_database, process_cpu_seconds, wait_for_quiet

WRK = shutil.which("wrk")
DEFAULT_ENGINE = "wrk" if WRK else "python"


@dataclass(frozen=True)
class Scenario:
    """What every request looks like.

    At most one of `body`, `unique_body` and `body_pool` is used: the same body every time, a
    template whose `{n}` becomes a token unique to each request (across runs too), or a list of
    bodies sent in turn.

    `header_pool`, when given, adds one entry's headers to `headers` per request, in turn (e.g.
    many users' tokens); with a `body_pool` it must have the same length, and entry k of each
    pool is sent together (user k's token with user k's body).
    """

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    unique_body: str | None = None
    body_pool: Sequence[str] = ()
    header_pool: Sequence[Mapping[str, str]] = ()


@dataclass(frozen=True)
class Result:
    engine: str
    connections: int
    seconds: float
    requests: int
    errors: int  # socket errors, timeouts and non-2xx/3xx answers
    p50_ms: float
    p99_ms: float
    client_cores: float  # CPU the load generator used, in cores (1.0 = one core busy all the time)
    server_cores: float | None  # CPU of the server process, in cores
    postgres_cores: float  # CPU of all postgres processes, in cores
    machine_cores: float  # CPU the whole machine used, in cores (2.0 = both cores saturated)
    background_cores: float | None = None  # CPU other processes used just before (None: not sampled)
    top_others: tuple[tuple[str, float], ...] = ()  # the busiest other processes during the run, in cores
    helper_cores: float = 0.0  # CPU of the server's own other processes (helper_pids), in cores

    @property
    def other_cores(self) -> float:
        """CPU of everything else during the run: the kernel's loopback work, other people's processes."""
        return (self.machine_cores - self.client_cores - (self.server_cores or 0.0) - self.postgres_cores
                - self.helper_cores)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


DISTURBED = 0.3  # cores: other processes busier than this during a run make it a disturbed one


def run(url: str, scenario: Scenario, *, connections: int, duration: float, engine: str = DEFAULT_ENGINE,
        server_pid: int | None = None, timeout: float = 30.0, quiet: bool = True, attempts: int | None = None,
        database: str | None = None, helper_pids: Sequence[int] = ()) -> Result:
    """Load `url`'s host with `scenario` for `duration` seconds over `connections` connections.

    With `quiet`, first wait (bounded) for the machine and the server to go idle, record how busy
    the rest of the machine still was, and measure again (up to `attempts` times in all) while other
    processes took more than DISTURBED cores during the run (common.ATTEMPTS by default); the least
    disturbed run is returned.
    `helper_pids` are the server's own other processes (a `ugc project` beside it): their CPU is not
    other load; it shows among the busiest processes, marked "(ours)".

    `database` says which PostgreSQL backends are the server's: None counts every postgres process
    as the server's database work; a name counts the backends of that database (and PostgreSQL's own
    processes), so other databases' backends count as other load; "" means the server has none.
    """
    if engine not in ("wrk", "python"):
        raise ValueError(f"unknown engine {engine!r}")
    results: list[Result] = []
    for _ in range((common.ATTEMPTS if attempts is None else attempts) if quiet else 1):
        background = wait_for_quiet(server_pid=server_pid) if quiet else None
        results.append(_measure(url, scenario, connections, duration, engine, server_pid, timeout, background,
                                database, helper_pids))
        if results[-1].other_cores <= DISTURBED:
            break
    return min(results, key=lambda r: r.other_cores)


def _measure(url: str, scenario: Scenario, connections: int, duration: float, engine: str,
             server_pid: int | None, timeout: float, background: float | None, database: str | None,
             helper_pids: Sequence[int] = ()) -> Result:
    server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    busy_before, _ = machine_cpu()
    snapshot_before = cpu_snapshot()
    wall = time.monotonic()
    if engine == "wrk":
        raw = _run_wrk(url, scenario, connections, duration, timeout)
    else:
        raw = _run_python(url, scenario, connections, duration, timeout)
    wall = time.monotonic() - wall
    busy_after, _ = machine_cpu()
    used = cpu_used(snapshot_before, cpu_snapshot())

    def ours(pid: int, name: str) -> bool:
        return name == "postgres" and (database is None or postgres_database(pid) in (None, database))

    postgres_cores = sum(cpu for pid, (name, cpu) in used.items() if ours(pid, name)) / wall
    mine = {os.getpid(), server_pid, *helper_pids}
    others = sorted(((describe(pid, name), cpu / wall) for pid, (name, cpu) in used.items()
                     if not ours(pid, name) and pid not in mine and cpu / wall >= 0.02), key=lambda o: -o[1])
    helpers = [(f"{describe(pid, used[pid][0])} (ours)", used[pid][1] / wall) for pid in helper_pids if pid in used]
    server_cores = (process_cpu_seconds(server_pid) - server_before) / wall if server_pid else None
    requests, seconds, errors, p50, p99, client_cpu = raw
    return Result(engine, connections, seconds, requests, errors, p50, p99, client_cpu / wall, server_cores,
                  postgres_cores, (busy_after - busy_before) / wall, background, tuple(helpers + others[:3]),
                  sum(cores for _, cores in helpers))


def _nonce() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=6))


# --- wrk -------------------------------------------------------------------------------------------

def _lua_string(text: str) -> str:
    return f"[==[{text}]==]"


def _pooled_headers(scenario: Scenario, counter: str) -> str:
    """The Lua expression for the headers of request number `counter`: nil (wrk.headers) or a pool entry."""
    return f"hpool[({counter} + tid * 7919) % #hpool + 1]" if scenario.header_pool else "nil"


def wrk_script(scenario: Scenario) -> str:
    """The Lua script that makes wrk send `scenario` and print its summary as one JSON line."""
    if scenario.header_pool and scenario.body_pool and len(scenario.header_pool) != len(scenario.body_pool):
        raise ValueError("header_pool and body_pool are sent in pairs: give them the same length")
    lines = [f"wrk.method = {_lua_string(scenario.method)}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in scenario.headers.items()]
    if scenario.body is not None:
        lines.append(f"wrk.body = {_lua_string(scenario.body)}")
    if scenario.header_pool:  # each entry complete: wrk.format uses it instead of wrk.headers
        entries = ({**scenario.headers, **extra} for extra in scenario.header_pool)
        lines.append("local hpool = {" + ", ".join(
            "{" + ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in entry.items()) + "}"
            for entry in entries) + "}")
    lines.append("local threads = 0")
    lines.append("function setup(thread) threads = threads + 1; thread:set('tid', threads) end")
    if scenario.unique_body is not None:
        nonce = _nonce()
        lines.append(f"local template = {_lua_string(scenario.unique_body)}")
        lines.append("local counter = 0")
        lines.append("request = function()\n"
                     "  counter = counter + 1\n"
                     f"  local body = string.gsub(template, '{{n}}', '{nonce}' .. tid .. 'n' .. counter)\n"
                     f"  return wrk.format(nil, nil, {_pooled_headers(scenario, 'counter')}, body)\n"
                     "end")
    elif scenario.body_pool:
        lines.append("local pool = {" + ", ".join(_lua_string(b) for b in scenario.body_pool) + "}")
        lines.append("local i = 0")
        lines.append("request = function()\n"
                     "  i = i + 1\n"
                     f"  local headers = {_pooled_headers(scenario, 'i')}\n"
                     "  return wrk.format(nil, nil, headers, pool[(i + tid * 7919) % #pool + 1])\n"
                     "end")
    elif scenario.header_pool:
        lines.append("local i = 0")
        lines.append("request = function()\n"
                     "  i = i + 1\n"
                     f"  return wrk.format(nil, nil, {_pooled_headers(scenario, 'i')}, nil)\n"
                     "end")
    lines.append(
        "function done(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        "  io.write(string.format('BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,"
        "\"p99_us\":%d,\"errors\":%d}\\n', summary.requests, summary.duration, latency:percentile(50),"
        " latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))\n"
        "end")
    return "\n".join(lines) + "\n"


def _run_wrk(url: str, scenario: Scenario, connections: int, duration: float,
             timeout: float) -> tuple[int, float, int, float, float, float]:
    if WRK is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk), use engine='python'")
    parts = urlsplit(url)
    target = f"{parts.scheme}://{parts.netloc}{scenario.path}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(scenario))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        completed = subprocess.run(
            [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", f"--timeout={int(timeout)}s",
             "-s", script.name, target],
            capture_output=True, text=True, timeout=duration + timeout + 30, check=True)
    finally:
        os.unlink(script.name)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children_after.ru_utime + children_after.ru_stime
                  - children_before.ru_utime - children_before.ru_stime)
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return (data["requests"], data["duration_us"] / 1e6, data["errors"],
            data["p50_us"] / 1000, data["p99_us"] / 1000, client_cpu)


# --- raw asyncio client ----------------------------------------------------------------------------

def _bodies(scenario: Scenario) -> Iterator[str | None]:
    if scenario.unique_body is not None:
        nonce, n = _nonce(), 0
        while True:
            n += 1
            yield scenario.unique_body.replace("{n}", f"{nonce}p{n}")
    elif scenario.body_pool:
        while True:
            yield from scenario.body_pool
    else:
        while True:
            yield scenario.body


def _header_sets(scenario: Scenario) -> Iterator[Mapping[str, str]]:
    """The extra headers of each request: the pool's entries in turn (in step with `_bodies`), or none."""
    while True:
        yield from scenario.header_pool or ({},)


def _request_bytes(scenario: Scenario, host: str, body: str | None, extra: Mapping[str, str] | None = None) -> bytes:
    lines = [f"{scenario.method} {scenario.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in {**scenario.headers, **(extra or {})}.items()]
    payload = body.encode() if body is not None else b""
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request, read its whole response (Content-Length framed); the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _load(host: str, port: int, scenario: Scenario, connections: int, duration: float,
                timeout: float) -> tuple[list[float], int, float]:
    """Latencies of the requests answered within the window, errors, and the window's seconds. Each
    connection starts as it opens (common.CONNECT_STAGGER apart); the window opens once all are."""
    loop = asyncio.get_running_loop()
    opens = loop.time() + connections * common.CONNECT_STAGGER
    deadline = opens + duration
    bodies = _bodies(scenario)
    header_sets = _header_sets(scenario)
    latencies: list[float] = []
    errors = 0

    async def connection(delay: float) -> None:
        nonlocal errors
        await asyncio.sleep(delay)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while loop.time() < deadline:
                request = _request_bytes(scenario, f"{host}:{port}", next(bodies), next(header_sets))
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        status = await _exchange(reader, writer, request)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if loop.time() >= opens:
                    latencies.append(time.perf_counter() - started)
                if status >= 400:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(k * common.CONNECT_STAGGER) for k in range(connections)))
    return latencies, errors, loop.time() - opens


def _run_python(url: str, scenario: Scenario, connections: int, duration: float,
                timeout: float) -> tuple[int, float, int, float, float, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    cpu = time.process_time()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the fastest loop Python has
        latencies, errors, seconds = runner.run(_load(host, port, scenario, connections, duration, timeout))
    cpu = time.process_time() - cpu
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0.0

    return len(latencies), seconds, errors, pct(0.50), pct(0.99), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--engine", choices=("wrk", "python"), default=DEFAULT_ENGINE)
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    path = urlsplit(args.url).path or "/"
    result = run(args.url, Scenario(path=path), connections=args.connections, duration=args.duration,
                 engine=args.engine, server_pid=args.server_pid)
    print(result, f"rps={result.rps:.0f}")


if __name__ == "__main__":
    main()
