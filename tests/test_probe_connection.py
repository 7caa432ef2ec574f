"""The checks' own connection (PostgreSQL, `ugc/platform/probe_connection.py`): a session ended since
the last check is replaced within the check, and a server that does not answer, or a lock, fails a
check within the connection's bounds instead of holding the checks' one thread."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from api.app import build_app
from api.readiness import READY_DEADLINE
from tests.conftest import checked_client
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform import probe_connection
from ugc.platform.database import Database, session
from ugc.platform.dialect import Cursor
from ugc.platform.pg_tools import maintenance_url
from ugc.platform.probe_connection import APPLICATION_NAME, CONNECT_TIMEOUT, ProbeConnection
from ugc.wiring import runtime


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
        probe = ProbeConnection(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/postgres", session())
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
    probe = ProbeConnection(postgres, {**session(), "options": "-c lock_timeout=0"})  # waits for locks unbounded

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


def test_readyz_names_the_database_while_it_refuses_the_checks_connection_and_reconnects_after(
    postgres: str, settings: Settings
) -> None:
    """The checks' session ended and the database refusing new ones: 503 naming the database within
    the deadline, though the requests' pooled sessions live on; 200 again once it accepts them."""
    name = urlsplit(postgres).path.lstrip("/")
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client, psycopg.connect(maintenance_url(postgres), autocommit=True) as admin:
        assert client.get("/readyz").json()["status"] == "ok"
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
                (APPLICATION_NAME, name),
            )
            started = time.monotonic()
            refused = client.get("/readyz")
            assert time.monotonic() - started < READY_DEADLINE + 0.5
            assert refused.status_code == 503, refused.text
            assert refused.json()["checks"]["database"] == "unavailable", refused.text
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
        assert client.get("/readyz").json()["status"] == "ok"
