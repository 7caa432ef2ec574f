"""`ugc` waiting for its database at start: a database that restarts is waited for, one that does
not exist only by the processes a deployment starts, and a stop still stops the wait."""

from __future__ import annotations

import os
import shutil
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

from tests.backends import POSTGRES_URL, environment, fresh_database, postgres_available
from tests.servers import end_process, free_port, run_ugc, server_environment
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
        logged(process, log, "the database of UGC_DATABASE_URL is not reachable")
        process.send_signal(stop)
        assert process.wait(timeout=10) == status, log.read_text()


UNSHARE = shutil.which("unshare")


def as_init(command: list[str]) -> list[str] | None:
    """`command` run as the first process of a new PID namespace, as a container runs its command (the
    image's CMD is `ugc serve`); None where this test process may not make one (no root, no `unshare`)."""
    if UNSHARE is None:
        return None
    wrapped = [UNSHARE, "--pid", "--fork", "--kill-child", *([] if os.geteuid() == 0 else ["--map-root-user"])]
    if subprocess.run([*wrapped, "true"], capture_output=True).returncode != 0:
        return None
    return [*wrapped, *command]


@pytest.mark.parametrize("command", [["project"], ["serve", "--port", "1"]])
def test_a_containers_first_process_waiting_for_its_database_stops_when_told(
    tmp_path: Path, command: list[str]
) -> None:
    """`docker stop` sends SIGTERM to the container's first process, and the kernel drops a signal
    that process has left to its default action. `ugc serve` (before uvicorn) and `ugc project`
    waiting for their database at start did leave SIGTERM so, and went on waiting until Docker's
    SIGKILL 10 s later. A `ugc` command takes SIGTERM as it takes Ctrl-C, and ends with 143."""
    wrapped = as_init([sys.executable, "-m", "ugc.cli", *command])
    if wrapped is None:
        pytest.skip("no PID namespace to be made here (needs `unshare` and root or user namespaces)")
    env = {"UGC_VAR_DIR": str(tmp_path), "UGC_DATABASE_URL": UNREACHABLE, "UGC_PROJECTIONS": "external"}
    log_path = tmp_path / "ugc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            wrapped, env=server_environment(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        logged(process, log_path, "the database of UGC_DATABASE_URL is not reachable")
        (first,) = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        (pids,) = [line for line in Path(f"/proc/{first}/status").read_text().splitlines() if line.startswith("NSpid:")]
        assert pids.split()[-1] == "1", pids  # the first process of its namespace
        os.kill(int(first), signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM, log_path.read_text()
    finally:
        end_process(process)


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
    assert done.stderr.startswith(f"ugc: {' '.join(command)} failed: ") and f"{named} does not exist" in done.stderr


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


@pytest.mark.parametrize(
    ("command", "name", "beneath"),
    [
        ("serve", "UGC_MEDIA_DIR", ""),
        ("serve", "UGC_AUDIT_DIR", "audit"),
        ("project", "UGC_AUDIT_DIR", ""),
        ("audit checkpoint", "UGC_AUDIT_DIR", ""),
        ("backup", "UGC_AUDIT_DIR", ""),
        ("backup", "UGC_MEDIA_DIR", "media"),
    ],
)
def test_a_directory_that_is_a_file_is_refused_at_start(
    backend: str, tmp_path: Path, command: str, name: str, beneath: str
) -> None:
    """The process started all the same: its uploads answered 503, or the projection leader's
    checkpoint job logged a traceback every round; `audit checkpoint` said `[Errno 17] File exists`,
    and a backup was made without the audit directory."""
    taken = tmp_path / "taken"
    taken.write_text("a file, not a directory")
    arguments = {
        "serve": [f"--port={free_port()}"],
        "project": ["--only=scheduler"],
        "backup": [str(tmp_path / "backup")],
    }.get(command, [])
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path / "var") | {name: str(taken / beneath)}
        assert run_ugc(env, "migrate", timeout=30).returncode == 0  # not what is refused
        done = run_ugc(env, *command.split(), *arguments, timeout=30)
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        f"ugc: {command}: {name}: {taken / beneath} cannot be a directory, {taken} is a file"
    ]
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize("command", ["serve", "project", "audit checkpoint"])
def test_an_audit_dir_where_no_checkpoint_can_be_written_is_refused_at_start(
    backend: str, tmp_path: Path, command: str
) -> None:
    """A directory that cannot be made or written (a file system mounted read-only, not the service
    user's): the server started all the same and the projection leader's checkpoint job logged a
    traceback every round; `audit checkpoint` said `failed: [Errno 1] Operation not permitted`."""
    audit = Path("/sys/ugc-audit")  # sysfs: nobody, root included, makes a directory there
    try:
        audit.mkdir()
    except OSError as error:
        reason = error.strerror
    else:
        audit.rmdir()
        pytest.skip("this sysfs takes a directory")
    arguments = {"serve": [f"--port={free_port()}"], "project": ["--only=scheduler"]}.get(command, [])
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path / "var") | {"UGC_AUDIT_DIR": str(audit)}
        assert run_ugc(env, "migrate", timeout=30).returncode == 0  # not what is refused
        done = run_ugc(env, *command.split(), *arguments, timeout=30)
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.strip().splitlines() == [
        f"ugc: {command}: UGC_AUDIT_DIR: no checkpoint can be written in {audit}: {reason}"
    ]


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
