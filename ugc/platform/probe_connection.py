"""A process's one PostgreSQL connection for its own checks (/readyz, /metrics' projection figures).

Requests hold the pools' connections: under a healthy burst every one was busy, and a check that
waited for one answered "no answer within 0.8 s" for a process that served all it was sent, so an
orchestrator would take a busy pod out and move its load onto the others. The checks read on this
connection instead, which no request ever takes. It is opened at the first check, dropped after any
failure and opened again at the next, and bounded, so that a database that does not answer lets go
of the checks' thread and connection soon: connecting (`connect_timeout`) and each statement
(`statement_timeout`, which covers a wait for a lock too). The bounds are longer than a probe's
deadline (READY_DEADLINE, api/readiness.py): a probe answers at its deadline, naming the check under
way, and the probes after it wait on that one check until it fails or ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ugc.platform.dead_connections import connection_lost

if TYPE_CHECKING:  # PostgreSQL's alone: imported where it connects (`ugc.platform.postgres_driver`)
    import psycopg

T = TypeVar("T")

CONNECT_TIMEOUT = 2  # seconds; libpq's least (it reads 1 as 2)
# Each statement of a check, a wait for a lock included: the bound the logs' statements had on the
# stores' connections (STORE_LOCK_TIMEOUT), so a check behind a locked log is one check under way
# for as long as before, which the probes meanwhile share (tests/test_database_outages.py).
STATEMENT_TIMEOUT_MS = 5000
APPLICATION_NAME = "ugc-probe"  # how its sessions show in pg_stat_activity


class ProbeConnection:
    """One connection, used by one caller at a time (a lock), opened lazily and after a failure."""

    def __init__(self, url: str, session: Mapping[str, Any]) -> None:
        options = f"{session.get('options', '')} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
        self._url = url
        self._kwargs = {
            **session,
            "options": options,
            "connect_timeout": CONNECT_TIMEOUT,
            "application_name": "ugc-probe",
        }
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(connection)`; once more on a new connection when the one kept from before was found
        dead (a server restarted, or an idle session ended, since the last check)."""
        from ugc.platform.postgres_driver import psycopg

        with self._lock:
            kept = self._connection is not None
            try:
                return self._attempt(work)
            except psycopg.Error as error:
                if not (kept and connection_lost(error)):
                    raise
            return self._attempt(work)

    def _attempt(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        if self._connection is None or self._connection.closed:
            from ugc.platform.postgres_driver import psycopg

            self._connection = psycopg.connect(self._url, **self._kwargs)
        try:
            return work(self._connection)
        except BaseException:
            self._drop()  # whatever failed, the next check starts on a fresh session
            raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
