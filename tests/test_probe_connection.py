"""The checks' own connection (PostgreSQL, `ugc/platform/probe_connection.py`): a session ended since
the last check is replaced within the check, and a server that does not answer, or a lock, fails a
check within the connection's bounds instead of holding the checks' one thread."""

from __future__ import annotations

import socket
import time
from typing import Any

import psycopg
import pytest

from ugc.config import Settings
from ugc.platform import probe_connection
from ugc.platform.database import SESSION, Database
from ugc.platform.dialect import Cursor
from ugc.platform.probe_connection import CONNECT_TIMEOUT, ProbeConnection


@pytest.fixture
def postgres(backend: str, settings: Settings) -> str:
    if backend != "postgres":
        pytest.skip("a PostgreSQL session")
    return settings.database_url


def backend_pid(cur: Cursor) -> int:
    row = cur.execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert row is not None
    return int(row["pid"])


def test_a_probe_session_ended_since_the_last_check_is_replaced_within_the_check(postgres: str) -> None:
    """A restart, a failover or an idle session's end found by the next check: it answers on a new
    session rather than fail once (one 503 from a healthy process)."""
    db = Database(postgres)
    try:
        first = db.probing(backend_pid)
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        assert db.probing(backend_pid) != first
        assert db.ping() is None
    finally:
        db.close()


@pytest.mark.timeout(30)
def test_a_server_that_does_not_answer_fails_the_check_once_connecting_takes_too_long(postgres: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        probe = ProbeConnection(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/postgres", SESSION)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            probe.run(lambda connection: connection.execute("SELECT 1"))
        assert time.monotonic() - started < CONNECT_TIMEOUT + 1.5
        probe.close()


@pytest.mark.timeout(30)
def test_a_check_behind_a_lock_fails_at_the_statement_bound_and_the_next_one_answers(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_connection, "STATEMENT_TIMEOUT_MS", 300)
    probe = ProbeConnection(postgres, {**SESSION, "options": "-c lock_timeout=0"})  # waits for locks unbounded

    def count(connection: psycopg.Connection[Any]) -> Any:
        return connection.execute("SELECT COUNT(*) AS n FROM probe_locked").fetchone()

    with psycopg.connect(postgres, autocommit=True) as holder:
        holder.execute("CREATE TABLE IF NOT EXISTS probe_locked (n int)")
        try:
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE probe_locked IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                probe.run(count)
            assert time.monotonic() - started < 2.0
            holder.execute("ROLLBACK")
            assert probe.run(count) == {"n": 0}
        finally:
            holder.execute("DROP TABLE IF EXISTS probe_locked")
            probe.close()
