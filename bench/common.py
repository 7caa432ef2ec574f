"""Plumbing shared by the benchmark scripts: ports, server processes, CPU counters, fresh databases.

Nothing here measures anything by itself.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

# The UGC_DATA_KEY of every server and script of the benchmarks, so a script reading the users a
# server registered (or registering users a server then reads) opens their personal data.
DATA_KEY = "bench-data-key-that-is-long-enough-0123456789"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS_DIR = ROOT / "bench" / "results"



def record(section: str, benchmark: str, began: datetime | None = None) -> Path:
    """Write one run's markdown to a new bench/results/<date>-<time>-<benchmark>.md and say so.

    The raw run only: bench/RESULTS.md is a short summary that a person updates from it.
    """
    stamp = (began or datetime.now(UTC)).strftime("%Y-%m-%d-%H%M")
    RESULTS_DIR.mkdir(exist_ok=True)
    for attempt in range(1, 100):
        path = RESULTS_DIR / f"{stamp}-{benchmark}{'' if attempt == 1 else f'-{attempt}'}.md"
        try:
            with path.open("x", encoding="utf-8") as out:  # never overwrite another run
                out.write(section.rstrip("\n") + "\n")
        except FileExistsError:
            continue
        print(f"Raw run written to {path.relative_to(ROOT)}. Now update its benchmark's summary in "
              "bench/RESULTS.md by hand: figure, ratio to this run's ceiling, date, command.", file=sys.stderr)
        return path
    raise FileExistsError(f"{RESULTS_DIR}/{stamp}-{benchmark}*.md")

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Return once 127.0.0.1:`port` accepts connections; fail if `process` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (a clean shutdown), then SIGKILL after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def server(argv: list[str], port: int, *, env: dict[str, str] | None = None, log: Path | None = None,
           ready_timeout: float = 60.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process for the block; its output goes to `log` (never to a pipe nobody reads)."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_port(port, process, ready_timeout)
        yield process
    finally:
        stop(process)
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def background(argv: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process with no port to wait for (e.g. `ugc project`), stopped like `server` at the end."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            time.sleep(0.5)
            if process.poll() is not None:
                raise RuntimeError(f"{argv} exited with {process.returncode} at start; see {log}")
            yield process
        finally:
            stop(process)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, summed over cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def _admin(statement: sql.Composed, *, patience: float = 120.0) -> None:
    """Run one statement on the maintenance database, waiting out 'too many clients' (others share it)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(statement)
            return
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2.0)


@contextmanager
def fresh_database(prefix: str = "ugc_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database for the block (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# How long a measurement waits for a quiet machine, and how often it is repeated while disturbed. A
# script may lower them when the machine is shared and never goes quiet (run_lifecycle.py --patience).
QUIET_LIMIT = 120.0
ATTEMPTS = 3
QUIET_THRESHOLD = 0.3  # cores other processes may use on a machine called quiet
# Seconds between a load's connections as they open. Opened in one burst, they are all accepted by
# whichever server worker wakes first (its event loop accepts until none is pending): the other
# worker idles, and the run measures one worker, not `ugc serve --workers 2` (for placing, a faster
# one: its groups are twice as large; 18:13 on 2026-12-04, 931 req/s against 752 spread). A few
# milliseconds apart, each goes to a worker not busy at that moment, as a stream of clients would.
CONNECT_STAGGER = 0.005


def wait_for_quiet(*, server_pid: int | None = None, threshold: float = QUIET_THRESHOLD, limit: float | None = None,
                   sample: float = 1.0) -> float:
    """Wait (at most `limit` s, QUIET_LIMIT by default) until the machine is quiet; the CPU (cores)
    other processes used last.

    Other people's test runs share this machine. Quiet means: the machine less `server_pid` busy
    below `threshold` cores, and `server_pid` itself (still finishing abandoned requests) below 0.05.
    """
    deadline = time.monotonic() + (QUIET_LIMIT if limit is None else limit)
    while True:
        busy_before = machine_cpu()[0]
        server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
        time.sleep(sample)
        server_used = (process_cpu_seconds(server_pid) - server_before) / sample if server_pid else 0.0
        other = (machine_cpu()[0] - busy_before) / sample - server_used
        if (other < threshold and server_used < 0.05) or time.monotonic() >= deadline:
            return other


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    """pid -> (command name, user + system CPU seconds so far) for every live process, kernel threads too."""
    found: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process went away
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        fields = text[text.rfind(")") + 1:].split()
        found[int(stat.parent.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[int, tuple[str, float]]:
    """CPU seconds each process alive at the end used between two snapshots (a new process: all of it)."""
    return {pid: (name, cpu - (before[pid][1] if pid in before else 0.0)) for pid, (name, cpu) in after.items()}


def postgres_database(pid: int) -> str | None:
    """The database a PostgreSQL backend serves (from its process title), None for the server's own processes.

    A backend's title reads `postgres: 15/main: USER DATABASE HOST(PORT) STATE`; the checkpointer's,
    walwriter's etc. read `postgres: 15/main: checkpointer`.
    """
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return None
    words = title.split(": ", 2)[-1].split()
    return words[1] if len(words) >= 3 else None


def describe(pid: int, name: str) -> str:
    """A short label for a process: its name, or for an interpreter the script or module it runs."""
    if name == "postgres":
        return f"postgres {postgres_database(pid) or ''}".strip()
    if name.startswith("kworker/"):
        return "kworker"  # kernel workers rename themselves after the work item of the moment
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return name
    if not name.startswith("python"):
        return name
    if len(argv) > 1 and argv[1] == "-c":
        return f"{name} -c"
    words = [a for a in argv[1:4] if a and not a.startswith("-")]
    return f"{name} {os.path.basename(words[0])}" if words else name


T = TypeVar("T")


def undisturbed(measure: Callable[[], T], database: str, *, attempts: int | None = None,
                threshold: float = QUIET_THRESHOLD) -> tuple[T, float]:
    """Run `measure` after the machine goes quiet, again (up to `attempts` in all) while processes
    other than this one, its children and PostgreSQL working for `database` took more than
    `threshold` cores; the least disturbed (result, other cores)."""
    runs: list[tuple[T, float]] = []
    for _ in range(ATTEMPTS if attempts is None else attempts):
        wait_for_quiet()
        busy, before = machine_cpu()[0], cpu_snapshot()
        mine = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        result = measure()
        wall = time.monotonic() - began
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, mine, strict=True))
        postgres = sum(cpu for pid, (name, cpu) in cpu_used(before, cpu_snapshot()).items()
                       if name == "postgres" and postgres_database(pid) in (None, database))
        runs.append((result, (machine_cpu()[0] - busy - own - postgres) / wall))
        if runs[-1][1] <= threshold:
            break
    return min(runs, key=lambda run: run[1])
