"""Orders placed from several threads while the processes behind them fail, one fault at a time.

A real `ugc serve --workers 2` on PostgreSQL with `UGC_PROJECTIONS=external`, one `ugc project`
beside it, and client threads placing orders over real HTTP, each order with its own
`Idempotency-Key` that every retry repeats. In turn:

(a) the `ugc project` holding the projections is killed (SIGKILL), and a new one is started only
    once clients have been answered 503 (the read side was down longer than the read-your-writes
    wait, so commands were stored but not acknowledged);
(b) one server worker is killed (SIGKILL) — the other keeps serving, uvicorn starts a new one;
(c) every database session of the test's database but the test's own is terminated
    (`pg_terminate_backend`): pools, the projector's lock and its LISTEN.

Clients retry on a transport error and on 503. Afterwards: every acknowledged (201) order is in
the event log and in the read side (buyers' lists, the creator's list and new-order notifications)
exactly once, no key placed more than one order, no row is repeated, and no request got a 500.

Not asserted, only counted (the summary line printed at the end): a key whose first attempt died
with its worker after claiming the key answers retries, after a 10 s wait, with 409 "in flight"
until `UGC_IDEMPOTENCY_IN_FLIGHT` (30 s); then a retry places the order if it was not stored
(tests/test_idempotency_crash.py) and gets 409 "answer lost" if it was. A key whose attempt
failed (a terminated session) after its order was stored answers 409 "answer lost" at once.
Faults are injected on events (a number of acknowledged orders, a 503 seen), never on timing, so
the outcome does not depend on the machine's speed; deadlines are only there to end a hung run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.errors import message
from readmodels.tracking import lagging
from tests.backends import DATA_KEY, environment, fresh_database, postgres_available
from tests.conftest import Api
from tests.orders_world import Deal, a_deal
from tests.servers import Server, ServerFailed, free_port, server_environment
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import EventStores

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL"),
]

CLIENTS = 6
ORDERS_BETWEEN_FAULTS = 15  # acknowledged orders that must arrive after each fault before the next
DEADLINE = 90.0  # seconds any one wait may take before the run counts as hung
MAX_ATTEMPTS = 40  # per order; a retry after 503 waits 0.2 s, after a transport error 0.1 s
IN_FLIGHT = message("idempotency_key_in_flight")
ANSWER_LOST = message("idempotency_key_answer_lost")


# Processes ------------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (with the pid, it names one process), None if gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def workers_of(master: int) -> list[int]:
    """The uvicorn worker processes `master` spawned and that are alive."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == master and b"spawn_main" in argv:
            found.append(int(stat.parent.name))
    return sorted(found)


class Projector:
    """`ugc project`, restarted as a supervisor (systemd, k8s) would when it exits by itself — it
    does when the shared PostgreSQL has no free connection at its start — but not once killed."""

    RESTARTS = 5

    def __init__(self, processes: Processes, env: dict[str, str], number: int) -> None:
        self.processes = processes
        self.env = env
        self.log = open(processes.log_dir / f"project-{number}.log", "ab")  # noqa: SIM115 - closed in close()
        self.runs: list[subprocess.Popen[bytes]] = []
        self.killed = False
        self.start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.runs[-1]

    def start(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "project"],
            env=server_environment(self.env),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.runs.append(process)
        self.processes.remember(process.pid)

    def supervise(self) -> None:
        if not self.killed and self.process.poll() is not None and len(self.runs) <= self.RESTARTS:
            self.start()

    def kill(self) -> None:
        self.killed = True
        self.processes.kill(self.process.pid)
        self.process.wait(10)

    def close(self) -> None:
        self.killed = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


class Processes:
    """Every process the test starts, by pid and start time, so cleanup kills exactly those."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.known: dict[int, int] = {}  # pid -> start time
        self.projectors: list[Projector] = []
        self.servers: list[Server] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def remember(self, pid: int) -> None:
        started = start_time(pid)
        if started is not None:
            self.known.setdefault(pid, started)

    def serve(self, env: dict[str, str], workers: int, attempts: int = 3) -> Server:
        """`ugc serve --workers N`, once it answers with all its workers; a server that exits at
        start (the shared PostgreSQL refused it a connection) is started again."""
        for attempt in range(1, attempts + 1):
            server = self._launch(env, workers)
            deadline = time.monotonic() + DEADLINE
            try:
                server.wait_until_healthy(deadline=deadline)
                self.workers(server, workers, deadline)
                return server
            except ServerFailed:
                if server.process.poll() is None or attempt == attempts:
                    raise
                server.stop()
        raise AssertionError("unreachable")

    def _launch(self, env: dict[str, str], workers: int) -> Server:
        """tests/servers.py starts one worker; this is its `launch_server` with `--workers`."""
        port = free_port()
        log_path = self.log_dir / f"server-{port}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Server.stop
        process = subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--workers", str(workers)],
            env=server_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        server = Server(process, port, log_path, log_file)
        self.servers.append(server)
        self.remember(process.pid)
        return server

    def project(self, env: dict[str, str]) -> Projector:
        with self._lock:
            projector = Projector(self, env, len(self.projectors) + 1)
            self.projectors.append(projector)
        return projector

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            with self._lock:
                for projector in self.projectors:
                    projector.supervise()

    def workers(self, server: Server, count: int, deadline: float) -> list[int]:
        """Wait until `server` runs `count` workers; their pids."""
        while len(pids := workers_of(server.process.pid)) < count:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise server.fail(f"did not run {count} workers (has {pids})")
            time.sleep(0.1)
        for pid in pids:
            self.remember(pid)
        return pids

    def started_workers(self, server: Server) -> int:
        """How many of `server`'s workers, replacements included, have finished their start-up."""
        return server.log_tail(10**8).count("Application startup complete.")

    def wait_for_started_workers(self, server: Server, count: int, deadline: float) -> None:
        """Wait until `count` workers of `server` have finished their start-up (see `started_workers`)."""
        while self.started_workers(server) < count:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise server.fail(f"did not finish starting {count} workers")
            time.sleep(0.1)

    def kill(self, pid: int) -> None:
        """SIGKILL `pid` if it is still the process the test started under that pid."""
        if pid in self.known and start_time(pid) == self.known[pid]:
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stopping.set()
        self._supervisor.join(10)
        for server in self.servers:
            for pid in workers_of(server.process.pid):
                self.remember(pid)
        for projector in self.projectors:
            if projector.process.poll() is None:
                projector.process.terminate()
        for server in self.servers:
            server.stop()
        for projector in self.projectors:
            projector.close()
        for pid in self.known:  # e.g. workers orphaned by a master that did not stop them
            self.kill(pid)


# Clients -------------------------------------------------------------------------------------


@dataclass
class Placed:
    """One order as a client saw it: every answer to every attempt under its key."""

    key: str
    buyer: int
    answers: list[int | str] = field(default_factory=list)
    order: int | None = None  # the id in the 201 answer

    @property
    def acknowledged(self) -> bool:
        return self.order is not None


class Traffic:
    """Client threads, each a buyer placing one order after another until told to stop."""

    def __init__(self, base_url: str, deal: Deal, buyers: list[dict[str, Any]]) -> None:
        self.base_url = base_url
        self.deal = deal
        self.buyers = buyers
        self.placed: list[Placed] = []
        self.phase = "before the faults"
        self.by_phase: dict[str, Counter[int | str]] = {}  # answers to every attempt, by fault
        self.failures: list[str] = []
        self._lock = threading.RLock()  # conditions checked under it read the counts
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(b,), daemon=True) for b in buyers]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=DEADLINE)
        assert not any(t.is_alive() for t in self._threads), "a client thread did not finish"

    def count(self, answer: int | str) -> int:
        """How many attempts got `answer` since the current phase began."""
        with self._lock:
            return self.by_phase.get(self.phase, Counter())[answer]

    def acknowledged(self) -> int:
        with self._lock:
            return sum(p.acknowledged for p in self.placed)

    def wait_until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        with self._changed:
            while not condition():
                assert not self.failures, self.failures
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {what} within {DEADLINE:.0f} s: {self.summary()}"
                self._changed.wait(min(remaining, 0.5))

    def wait_for_more(self, count: int) -> None:
        """Return once `count` more orders than now have been acknowledged."""
        target = self.acknowledged() + count
        self.wait_until(f"{count} more acknowledged orders", lambda: self._acknowledged() >= target)

    def _acknowledged(self) -> int:  # with the lock held
        return sum(p.acknowledged for p in self.placed)

    def summary(self) -> str:
        with self._lock:
            phases = "; ".join(f"{phase}: {dict(answers)}" for phase, answers in self.by_phase.items())
            return f"{self._acknowledged()} acknowledged of {len(self.placed)}; answers {phases}"

    def during(self, phase: str) -> None:
        """Count the answers from now on under `phase`."""
        with self._lock:
            self.phase = phase

    def _run(self, buyer: dict[str, Any]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self._stopping.is_set():
                placed = Placed(f"fault-{uuid.uuid4().hex}", buyer["id"])
                with self._lock:
                    self.placed.append(placed)
                try:
                    self._place(client, buyer, placed)
                except Exception as error:  # an assertion in a thread would vanish: hand it over
                    with self._lock:
                        self.failures.append(f"{placed.key}: {error!r}")
                    return
                finally:
                    with self._changed:
                        self._changed.notify_all()

    def _place(self, client: httpx.Client, buyer: dict[str, Any], placed: Placed) -> None:
        body = {
            "service_id": self.deal.service["id"],
            "requirements": requirements(placed.key),
            "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
            "selected_option_ids": [],
        }
        headers = buyer["headers"] | {"Idempotency-Key": placed.key}
        for _ in range(MAX_ATTEMPTS):
            try:
                response = client.post("/api/v1/orders/", headers=headers, json=body)
            except httpx.TransportError as error:  # the worker died with the connection
                self._answer(placed, type(error).__name__)
                time.sleep(0.1)
                continue
            self._answer(placed, response.status_code)
            if response.status_code == 201:
                order = response.json()
                assert order["requirements"] == body["requirements"], order
                with self._lock:
                    placed.order = int(order["id"])
                return
            if response.status_code == 503:
                time.sleep(0.2)
                continue
            if response.status_code == 409 and response.json().get("error") in (IN_FLIGHT, ANSWER_LOST):
                # The first attempt's claim outlived it (its worker was killed), or its order was
                # stored but its answer lost (a session terminated after the append): not acknowledged.
                return
            raise AssertionError(f"unexpected answer {response.status_code}: {response.text[:300]}")
        # Out of attempts: not acknowledged; checked below like any other unacknowledged key.

    def _answer(self, placed: Placed, answer: int | str) -> None:
        with self._lock:
            placed.answers.append(answer)
            self.by_phase.setdefault(self.phase, Counter())[answer] += 1


def requirements(key: str) -> str:
    """What an order's requirements say: its key, so the log and the read side can be matched to it."""
    return f"Заказ {key}"


# Faults ----------------------------------------------------------------------------------------


def terminate_sessions(url: str) -> int:
    """pg_terminate_backend every session of the database at `url` but this one; how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return sum(1 for (done,) in rows if done)


# What the system holds afterwards ----------------------------------------------------------------


def pages(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """Every item of a paginated list (and the `count` it announced), following `next`."""
    items: list[dict[str, Any]] = []
    url: str | None = f"{path}?page_size=100"
    count = -1
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        count = page["count"] if count < 0 else count
        items.extend(page["results"])
        url = page["next"]
    return count, items


def placed_in_log(url: str) -> list[tuple[int, str]]:
    """(order number, requirements) of every OrderPlaced event in the orders log, oldest first."""
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        app = stores.orders
        found, start = [], 0
        while batch := app.recorder.select_notifications(
            start=start, limit=500, topics=["ugc.Order.Placed"], inclusive_of_start=False
        ):
            for notification in batch:
                event = app.mapper.to_domain_event(notification)
                found.append((int(event.number), str(event.requirements)))  # type: ignore[attr-defined]
            start = batch[-1].id
        return found
    finally:
        stores.close()


def wait_for_read_side(url: str) -> None:
    """Return once every read model has applied every event now in the log."""
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    try:
        heads = stores.heads()
        deadline = time.monotonic() + DEADLINE
        while behind := lagging(db, heads):
            assert time.monotonic() < deadline, f"read models still behind {heads}: {behind}"
            time.sleep(0.2)
    finally:
        stores.close()
        db.close()


# The test --------------------------------------------------------------------------------------


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path / "logs")
    started.log_dir.mkdir()
    try:
        yield started
    finally:
        started.stop()


def test_acknowledged_orders_survive_projector_worker_and_session_kills(tmp_path: Path, processes: Processes) -> None:
    with fresh_database("postgres", tmp_path) as url, ExitStack() as stack:
        env = environment("postgres", url, tmp_path) | {"UGC_PROJECTIONS": "external"}
        server = processes.serve(env, workers=2)
        projector = processes.project(env)
        settings = Settings.from_env(env)
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
        api = Api(client, settings)  # type: ignore[arg-type]
        # The categories are seeded by `serve` and listed once the projector has caught up.
        deadline = time.monotonic() + DEADLINE
        while not (listed := client.get("/api/v1/categories/")).status_code == 200 or not listed.json()["results"]:
            assert time.monotonic() < deadline, "the projector did not catch up"
            time.sleep(0.1)
        deal = a_deal(api)
        buyers = [deal.buyer] + [api.verified_user() for _ in range(CLIENTS - 1)]

        traffic = stack.enter_context(Traffic(server.url, deal, buyers))
        traffic.wait_for_more(ORDERS_BETWEEN_FAULTS)

        # (a) The projector dies; commands are stored but time out waiting for the read side.
        traffic.during("(a) projector killed")
        projector.kill()
        traffic.wait_until("503 while the projector is down", lambda: traffic.count(503) > 0)
        processes.project(env)
        traffic.wait_for_more(ORDERS_BETWEEN_FAULTS)

        # (b) A worker dies mid-traffic; the other one serves the clients' retries.
        traffic.during("(b) worker killed")
        started = processes.started_workers(server)
        processes.kill(processes.workers(server, 2, time.monotonic() + DEADLINE)[0])
        traffic.wait_for_more(ORDERS_BETWEEN_FAULTS)
        processes.workers(server, 2, time.monotonic() + DEADLINE)  # uvicorn replaced it
        # One fault at a time: the replacement must have finished its start-up before (c). Sessions
        # cut while a worker starts make its start-up fail, and uvicorn then stops the whole server
        # (seen when the 15 orders came before the replacement was up).
        processes.wait_for_started_workers(server, started + 1, time.monotonic() + DEADLINE)

        # (c) Every database session but ours is terminated: pools, the projector's lock, LISTENs.
        traffic.during("(c) sessions terminated")
        assert terminate_sessions(url) > 0
        traffic.wait_for_more(ORDERS_BETWEEN_FAULTS)
        traffic.stop()

        assert not traffic.failures, traffic.failures
        wait_for_read_side(url)
        placed = traffic.placed
        by_key = {requirements(p.key): p for p in placed}
        acknowledged = {p.order: p for p in placed if p.order is not None}
        assert len(acknowledged) == sum(p.acknowledged for p in placed), "two keys acknowledged with one order id"

        # The event log: one OrderPlaced per acknowledged key, never two for any key.
        log = placed_in_log(url)
        per_key = Counter(text for _, text in log if text in by_key)
        repeated = {k: (n, by_key[k].answers) for k, n in per_key.items() if n > 1}
        assert repeated == {}, "keys that placed more than one order (orders, answers to the attempts)"
        assert len({number for number, _ in log}) == len(log), "an order number appended twice"
        logged = {number: text for number, text in log}
        for order, p in acknowledged.items():
            assert logged.get(order) == requirements(p.key), f"acknowledged order {order} ({p.key}) not in the log"

        # The read side: each buyer's list, the creator's list and notifications, once per order.
        ours = {number for number, text in log if text in by_key}
        seen: list[int] = []
        for buyer in buyers:
            count, rows = pages(client, "/api/v1/orders/", buyer["headers"])
            assert count == len(rows), f"buyer {buyer['id']}: count {count} but {len(rows)} rows"
            for row in rows:
                assert row["requirements"] == logged[row["id"]], row
                assert by_key[row["requirements"]].buyer == buyer["id"], row
            seen.extend(row["id"] for row in rows)
        assert sorted(seen) == sorted(set(seen)), "an order listed twice"
        assert set(seen) == ours, "the buyers' lists differ from the log"
        count, rows = pages(client, "/api/v1/orders/", deal.creator["headers"])
        assert count == len(rows) and sorted(r["id"] for r in rows) == sorted(ours), "the creator's list"
        _, notes = pages(client, "/api/v1/notifications/", deal.creator["headers"])
        new_orders = Counter(n["data"]["order_id"] for n in notes if n["type"] == "new_order")
        assert new_orders == Counter(ours), "not one new_order notification per order"

        # No request got a 500, and none was logged.
        answers = Counter(a for p in placed for a in p.answers)
        assert not [a for a in answers if isinstance(a, int) and a >= 500 and a != 503], answers
        for logged_by in processes.servers:
            assert "unhandled error" not in logged_by.log_tail(10**8), logged_by.log_tail()
        stuck = sum(1 for p in placed if p.order is None and 409 in p.answers)
        print(f"\n{traffic.summary()}; {len(log)} orders in the log; keys answered 409 (in flight, lost): {stuck}")
