"""`ugc` waiting for its database at start: a database that restarts is waited for, one that does
not exist only by the processes a deployment starts, and a stop still stops the wait."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.backends import POSTGRES_URL, postgres_available
from tests.servers import end_process, run_ugc, server_environment
from ugc.platform.database import absent

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/ugc"  # nothing listens on port 1: refused at once


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_a_projector_waiting_for_its_database_stops_when_told(
    tmp_path: Path, stop: signal.Signals, status: int
) -> None:
    """`ugc project` runs "until interrupted", the wait for its database included: it ends as
    `ugc migrate` does there (Ctrl-C: 130), not up to 2 minutes later."""
    env = {"UGC_VAR_DIR": str(tmp_path), "UGC_DATABASE_URL": UNREACHABLE, "UGC_PROJECTIONS": "external"}
    # Ctrl-C as at a terminal, even where this test runs with SIGINT ignored (a background job).
    with projector(tmp_path, env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as (process, log):
        logged(process, log, "database not reachable")
        process.send_signal(stop)
        assert process.wait(timeout=10) == status, log.read_text()


@pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to PostgreSQL")
@pytest.mark.parametrize(
    ("url", "named"),
    [
        (POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_database_here", 'database "no_such_database_here"'),
        (POSTGRES_URL.replace("://postgres@", "://no_such_role_here@", 1), 'role "no_such_role_here"'),
    ],
)
@pytest.mark.parametrize("command", [["migrate"], ["users", "list"]])
def test_a_database_or_role_that_does_not_exist_is_told_at_once(
    tmp_path: Path, url: str, named: str, command: list[str]
) -> None:
    """A mistyped name will not come into being while a person waits: one line, not 2 minutes of
    warnings ending with the same answer."""
    assert url != POSTGRES_URL
    started = time.monotonic()
    done = run_ugc({"UGC_VAR_DIR": str(tmp_path), "UGC_DATABASE_URL": url}, *command, timeout=30)
    assert done.returncode == 1 and time.monotonic() - started < 20, done
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"ugc: {command[0]} failed: ") and f"{named} does not exist" in done.stderr


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  password authentication failed for user "ugc"'
        ),
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "ugc", database "ugc", no encryption'
        ),
        psycopg.errors.InvalidCatalogName("database gone"),  # where the server's error reached a session
        psycopg.errors.InvalidPassword("wrong password"),
    ],
)
def test_a_refused_password_or_host_is_no_outage(error: psycopg.OperationalError) -> None:
    assert absent(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused'
        ),
        psycopg.OperationalError("connection failed: FATAL:  sorry, too many clients already"),
        psycopg.OperationalError("connection failed: FATAL:  the database system is starting up"),
    ],
)
def test_a_database_restarting_or_full_is_an_outage_to_wait_for(error: psycopg.OperationalError) -> None:
    assert not absent(error)


def test_a_projector_without_a_public_url_says_where_its_mails_link(tmp_path: Path) -> None:
    """With external projections `ugc project` sends the verification mails, and it serves no port
    to take UGC_PUBLIC_URL's default from: its links went to port 8000, whatever the API's was."""
    env = {"UGC_VAR_DIR": str(tmp_path), "UGC_PROJECTIONS": "external"}
    with projector(tmp_path, env) as (process, log):
        logged(process, log, "UGC_PUBLIC_URL is not set")
        assert "link to http://127.0.0.1:8000" in log.read_text()


@contextmanager
def projector(tmp_path: Path, env: dict[str, str], **popen: Any) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`ugc project` with these variables, its output in a log file; ended on the way out."""
    log_path = tmp_path / "project.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "project"],
            env=server_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            **popen,
        )
    try:
        yield process, log_path
    finally:
        end_process(process)


def logged(process: subprocess.Popen[bytes], log: Path, text: str, timeout: float = 30) -> None:
    """Wait until the running `process` has written `text` to its log."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
