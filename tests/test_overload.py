"""More requests than a server process can serve at once, the database slow (PostgreSQL, a real
`ugc serve`): a request that cannot get a blocking thread, or a pooled connection, within
`UGC_QUEUE_TIMEOUT` answers 503 with `Retry-After` at once, instead of queueing for as long as the
database stays slow.

A lock on a read table stands in for the slow database: every request that reads it waits behind
it, holding what it took (a thread, the process's one connection of its pool): GET
/api/v1/users/me/ reads on a thread and the blocking pool, a list of notifications on the event
loop's pool. Registrations wait in a line of the event loop's own, for a password hash
(argon2id at its production cost here: ~0.27 s each, one registration at a time).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from api.services import BLOCKING_THREADS
from tests.backends import environment, fresh_database
from tests.servers import Server, start_server
from tests.test_database_outages import UNAVAILABLE

THREADS = BLOCKING_THREADS
CLIENTS = 3 * THREADS
# Seconds the lock is held: below the pools' own waits (10 s, 30 s), so without the bound no one
# answers before it goes; and 4 s past the queue timeout (1 s), for the burst's 503s to come before.
HOLD = 5.0


@contextmanager
def behind_locks(backend: str, tmp_path: Path, queue_timeout: float) -> Iterator[tuple[Server, str]]:
    """A server (and its database's URL) whose pools hold one connection each and whose reads wait
    behind a lock for as long as it lasts; work waits `queue_timeout` seconds in line."""
    if backend != "postgres":
        pytest.skip("a PostgreSQL lock")
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path) | {
            "UGC_DB_POOL_MAX": "1",
            "UGC_DB_ASYNC_POOL_MAX": "1",
            "UGC_DB_LOCK_TIMEOUT": "60",
            "UGC_QUEUE_TIMEOUT": f"{queue_timeout:g}",
        }
        with start_server(env, log_dir=tmp_path) as server:
            yield server, url


@pytest.fixture
def served(backend: str, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    with behind_locks(backend, tmp_path, queue_timeout=1) as served:
        yield served


def signed_in(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=30) as client:
        body = {
            "username": "overloaded",
            "email": "overloaded@example.com",
            "password": "correct-horse-battery",
            "first_name": "Иван",
            "last_name": "Петров",
        }
        assert client.post("/api/auth/register/", json=body).status_code == 201
        tokens = client.post("/api/auth/token/", json={"username": "overloaded", "password": body["password"]})
        return {"Authorization": f"Bearer {tokens.json()['access']}"}


async def burst(base: str, path: str, headers: dict[str, str]) -> list[tuple[httpx.Response, float]]:
    """CLIENTS requests at once, each answer with the moment it came."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one() -> tuple[httpx.Response, float]:
            response = await client.get(path, headers=headers)
            return response, time.monotonic()

        return await asyncio.gather(*(one() for _ in range(CLIENTS)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("table", "path", "waiting"),
    [
        ("users", "/api/v1/users/me/", CLIENTS - THREADS - 1),  # past the threads, which wait for the connection
        ("notifications", "/api/v1/notifications/", CLIENTS - 1),  # all but the one on the connection
    ],
)
def test_requests_that_wait_in_line_past_the_queue_timeout_answer_503_while_the_database_is_slow(
    served: tuple[Server, str], table: str, path: str, waiting: int
) -> None:
    server, url = served
    headers = signed_in(server.url)
    released: list[float] = []
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release() -> None:
        time.sleep(HOLD)
        released.append(time.monotonic())
        holder.execute("ROLLBACK")
        holder.close()

    releasing = threading.Thread(target=release)
    releasing.start()
    try:
        answers = asyncio.run(burst(server.url, path, headers))
    finally:
        releasing.join()

    statuses = {response.status_code for response, _ in answers}
    assert statuses <= {200, 503}, statuses
    shed = [(response, at) for response, at in answers if response.status_code == 503]
    for response, _ in shed:
        assert response.json() == UNAVAILABLE
        assert response.headers["Retry-After"] == "1"
    # Those waiting in line were answered while the database was still slow, not after.
    early = [at for _, at in shed if at < released[0]]
    assert len(early) >= waiting, (len(early), sorted(statuses))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get(path, headers=headers).status_code == 200


@pytest.fixture
def hashing_server(backend: str, tmp_path: Path) -> Iterator[Server]:
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path) | {
            "UGC_ARGON2_TIME_COST": "3",
            "UGC_ARGON2_MEMORY_KIB": "65536",
            "UGC_QUEUE_TIMEOUT": "1",
        }
        with start_server(env, log_dir=tmp_path) as server:
            yield server


REGISTRATIONS = 24  # ~6.5 s of hashing one after the other


async def register_at_once(base: str) -> list[tuple[str, httpx.Response]]:
    """REGISTRATIONS new users at once, each from an address of its own (the server believes
    127.0.0.1's X-Forwarded-For), as a crowd signing up would."""
    limits = httpx.Limits(max_connections=REGISTRATIONS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one(n: int) -> tuple[str, httpx.Response]:
            name = f"crowd{n}"
            body = {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery"}
            headers = {"X-Forwarded-For": f"10.9.0.{n + 1}"}
            return name, await client.post("/api/auth/register/", json=body, headers=headers)

        return await asyncio.gather(*(one(n) for n in range(REGISTRATIONS)))


@pytest.mark.timeout(120)
def test_registrations_that_wait_for_a_hash_past_the_queue_timeout_answer_503_having_registered_nobody(
    hashing_server: Server,
) -> None:
    answers = asyncio.run(register_at_once(hashing_server.url))

    assert {response.status_code for _, response in answers} == {201, 503}
    shed = [name for name, response in answers if response.status_code == 503]
    for _, response in answers:
        if response.status_code == 503:
            assert response.json() == UNAVAILABLE
            assert response.headers["Retry-After"] == "1"
    with httpx.Client(base_url=hashing_server.url, timeout=30) as client:
        for name in shed[:3]:  # nothing was stored for them: registering again is a first registration
            body = {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery"}
            assert client.post("/api/auth/register/", json=body).status_code == 201
