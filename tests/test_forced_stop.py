"""A second stop signal (Ctrl-C twice, SIGTERM twice) forces the stop of real `ugc serve` (one worker and
`--workers 2`) and `ugc project` processes whose stop waits, here on a table lock a test holds.

A terminal's Ctrl-C sends SIGINT to the whole process group (each server is the leader of its own,
under `setsid`); a supervisor (Docker, systemd) sends SIGTERM to its process alone.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.backends import environment, fresh_database, postgres_available
from tests.servers import Server, end_process, launch_server, start_projector
from tests.test_graceful_stop import PASSWORD, logged, verified_user
from ugc.platform import leases
from ugc.platform.database import Database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not postgres_available(), reason="a stop held up by a table lock: PostgreSQL"),
]

# Seconds a session waits for a lock (UGC_DB_LOCK_TIMEOUT), and a list's statement runs
# (UGC_DB_READ_TIMEOUT): longer than any test here.
HELD = 300
FORCED_WITHIN = 5  # seconds from the second signal to the process's end


def awaited(url: str, table: str, query: str = "%") -> None:
    """Return once a session whose statement is LIKE `query` waits for the lock on `table` (the one
    this test holds)."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while watcher.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE NOT l.granted AND l.relation = %s::regclass AND a.query LIKE %s)",
            (table, query),
        ).fetchone() != (True,):
            assert time.monotonic() < deadline, f"nothing waits for the lock on {table}"
            time.sleep(0.01)


def signalled(server: Server, number: signal.Signals) -> None:
    """SIGINT as a terminal sends it, to the process group; SIGTERM as a supervisor does, to the process."""
    if number == signal.SIGINT:
        os.killpg(server.process.pid, number)
    else:
        server.process.send_signal(number)


@pytest.mark.parametrize(
    ("workers", "number", "pause"),
    [
        (1, signal.SIGINT, 2.0),
        (1, signal.SIGTERM, 2.0),
        (2, signal.SIGINT, 2.0),
        (2, signal.SIGTERM, 2.0),
        (2, signal.SIGTERM, 0.1),  # both seen in one of the supervisor's looks at its signals (every 0.5 s)
    ],
    ids=["SIGINT-1", "SIGTERM-1", "SIGINT-2", "SIGTERM-2", "SIGTERM-2-quickly"],
)
def test_a_second_stop_signal_ends_a_server_at_once_with_one_line(
    workers: int, number: signal.Signals, pause: float, tmp_path: Path
) -> None:
    """A request waits on a table an operator's migration holds: the first signal's drain waits for it
    (up to 30 s, then the projections' and the commands' own stop). A second Ctrl-C forced the exit but
    logged a lifespan traceback at ERROR; a second SIGTERM did nothing, and `--workers N`'s supervisor
    did not pass it on. Now either, `pause` seconds after the first, ends the process (its workers) at
    once, exit status 0, with one warning line; one Ctrl-C alone (a worker's SIGINT from the terminal,
    then SIGTERM from its supervisor) still drains."""
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path) | {
            "UGC_DB_LOCK_TIMEOUT": str(HELD),
            "UGC_DB_READ_TIMEOUT": str(HELD),
        }
        server = launch_server(env, log_dir=tmp_path / "logs", workers=workers, prefix=("setsid",))
        with server, psycopg.connect(url) as locker:
            server.wait_until_healthy()
            logged(server, "Application startup complete.", count=workers)
            verified_user(env, "waiter")
            login = {"username": "waiter", "password": PASSWORD}
            access = httpx.post(f"{server.url}/api/auth/token/", json=login).json()["access"]
            locker.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
            outcome: list[httpx.Response | httpx.TransportError] = []

            def ask() -> None:
                try:
                    headers = {"Authorization": f"Bearer {access}"}
                    outcome.append(httpx.get(f"{server.url}/api/v1/notifications/", headers=headers, timeout=HELD))
                except httpx.TransportError as error:
                    outcome.append(error)

            asking = threading.Thread(target=ask)
            asking.start()
            # The request waits for the notifications table (a list's read: projections' batches write).
            awaited(url, "notifications", "%READ ONLY%")
            signalled(server, number)
            time.sleep(pause)
            assert server.process.poll() is None, server.log_tail()  # the first signal drains
            signalled(server, number)
            assert server.process.wait(FORCED_WITHIN) == 0, server.log_tail()
            asking.join(FORCED_WITHIN)
        log = server.log_path.read_text()
        assert " ERROR " not in log and "Traceback" not in log, log
        cut = outcome[0] if len(outcome) == 1 else None
        assert isinstance(cut, httpx.TransportError), outcome  # its connection closed: no answer, no 500
        # One line per process forced: the one that had the request, and an idle worker that had not
        # ended its own stop yet.
        forced = sorted(re.findall(r"forced stop: (\d+) request", log))
        assert forced == ["1"] or (workers == 2 and forced == ["0", "1"]), log


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_stop_signal_ends_a_projector_at_once(number: signal.Signals, tmp_path: Path) -> None:
    """`ugc project` stopped waits up to 10 s for its read models' batch under way, here one held up by
    the `users` table an operator's migration holds, then gives its leases up. A second signal did
    nothing. Now it ends the process at once, exit status 0, with one warning line; the leases lapse
    within seconds for another projector."""
    with fresh_database("postgres", tmp_path, migrated=True) as url, psycopg.connect(url) as locker:
        env = environment("postgres", url, tmp_path) | {"UGC_PROJECTIONS": "external", "UGC_DB_LOCK_TIMEOUT": str(HELD)}
        verified_user(env, "held")  # its events wait for the projector, which finds the table locked
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        log_path = tmp_path / "project.log"
        db = Database(url)
        projector = start_projector(env, log_path)
        try:
            deadline = time.monotonic() + 60
            while not any(state.holder for state in leases.states(db).values()):
                assert projector.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            awaited(url, "users")  # the read models' batch waits for the table
            projector.send_signal(number)
            time.sleep(3.0)
            assert projector.poll() is None, log_path.read_text()  # its stop waits for the batch
            projector.send_signal(number)
            assert projector.wait(FORCED_WITHIN) == 0, log_path.read_text()
        finally:
            end_process(projector)
            db.close()
        log = log_path.read_text()
        assert " ERROR " not in log and "Traceback" not in log, log
        assert log.count("forced stop:") == 1, log
