"""`ugc users erase` killed part-way, against a real server: what it left undone is named by `ugc verify`
until erasing again finishes it.

The erasure appends `User.Erased`, then withdraws the person's services, portfolio and skills and
cancels their open orders (step 4). Killed in between (held at the catalog's append, the lock every
append takes, then SIGKILL), it left the erased creator's service listed and open to new orders, and
their order pending, and `ugc verify` said nothing: the journal line and the destroyed keys agree, so
the erasure looked done.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.backends import environment
from tests.conftest import Api
from tests.servers import Server, run_ugc, served_fresh, server_environment
from tests.test_erasure_races import catalog_held
from ugc.config import Settings, sqlite_path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

UNAVAILABLE = {"service_id": ["Сервис недоступен для заказа."]}


@pytest.fixture
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("erasure-killed-var")) as served:
        yield served


def _kill_erasure_when(env: dict[str, str], person: dict[str, str], reached: Callable[[], bool]) -> None:
    """Start `ugc users erase` on `person` and SIGKILL it once `reached()`, while a lock the caller holds
    keeps it from going further."""
    erasing = subprocess.Popen(
        [sys.executable, "-m", "ugc.cli", "users", "erase", person["username"], "--yes"],
        env=server_environment(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not reached():
            assert erasing.poll() is None, "the erasure ended before the point it was to be killed at"
            time.sleep(0.05)
    finally:
        erasing.send_signal(signal.SIGKILL)
        erasing.wait()


def _kill_erasure_after_its_user_erased(env: dict[str, str], client: httpx.Client, person: dict[str, str]) -> None:
    """SIGKILL `ugc users erase` on `person` once the server refuses their token (User.Erased stored and
    announced), while the catalog's lock held by the caller keeps it from withdrawing anything."""
    _kill_erasure_when(
        env, person, lambda: client.get("/api/v1/users/me/", headers=person["headers"]).status_code == 401
    )


@contextmanager
def sessions_held(settings: Settings) -> Iterator[Callable[[], bool]]:
    """Hold the lock that ending a person's sessions takes (the `refresh_families` table on PostgreSQL,
    the main file's write lock on SQLite); yield whether a `User.Erased` is stored."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url) as held, psycopg.connect(url, autocommit=True) as looking:
            held.execute("LOCK TABLE refresh_families IN EXCLUSIVE MODE")
            query = "SELECT count(*) FROM accounts_events WHERE topic = 'ugc.User.Erased'"
            yield lambda: looking.execute(query).fetchone() != (0,)
        return
    main = Path(sqlite_path(url))
    accounts = main.with_name(f"{main.stem}.accounts{main.suffix}")
    with closing(sqlite3.connect(main, isolation_level=None)) as held, closing(sqlite3.connect(accounts)) as looking:
        held.execute("BEGIN IMMEDIATE")
        query = "SELECT count(*) FROM stored_events WHERE topic = 'ugc.User.Erased'"
        yield lambda: looking.execute(query).fetchone() != (0,)
        held.execute("ROLLBACK")


def _creator_service_and_buyer(client: httpx.Client, settings: Settings) -> tuple[dict[str, Any], ...]:
    """A creator, a service of theirs and a verified buyer, made through the API."""
    api = Api(client, settings)  # type: ignore[arg-type]
    creator = api.creator()
    return creator, api.service(creator), api.verified_user()


def _order_of(service: dict[str, Any]) -> dict[str, Any]:
    """The body of an order on `service`."""
    return {"service_id": service["id"], "requirements": "Обзор", "delivery_date": str(date.today() + timedelta(9))}


def test_an_erasure_killed_before_it_ended_the_persons_dealings_is_named_by_verify_until_finished(
    backend: str, server: tuple[Server, Settings]
) -> None:
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        creator, service, buyer = _creator_service_and_buyer(client, settings)
        placed = client.post("/api/v1/orders/", headers=buyer["headers"], json=_order_of(service))
        assert placed.status_code == 201, placed.text
        order = placed.json()["id"]
        with catalog_held(settings):
            _kill_erasure_after_its_user_erased(env, client, creator)
        assert client.get(f"/api/v1/orders/{order}/", headers=buyer["headers"]).json()["status"] == "pending"

        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 1, verified.stdout + verified.stderr
        (finding,) = json.loads(verified.stdout)["findings"]
        assert finding["kind"] == "erasure", finding
        assert finding["what"].startswith(f"user {creator['id']} ({creator['username']}), erased by line 1"), finding
        assert f"1 service(s) offered: {service['id']}" in finding["what"], finding
        assert f"1 order(s) open: {order}" in finding["what"], finding
        assert f"`ugc users erase {creator['username']} --yes` finishes it" in finding["what"], finding

        finished = run_ugc(env, "users", "erase", creator["username"], "--yes")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert "1 service(s) withdrawn" in finished.stdout and "1 order(s) cancelled" in finished.stdout
        listed = client.get("/api/v1/services/", params={"creator": creator["profile"]["id"]}).json()
        assert listed["count"] == 0
        assert client.get(f"/api/v1/orders/{order}/", headers=buyer["headers"]).json()["status"] == "cancelled"
        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_service_of_a_creator_whose_erasure_was_killed_before_withdrawing_it_takes_no_order(
    backend: str, server: tuple[Server, Settings]
) -> None:
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        creator, service, buyer = _creator_service_and_buyer(client, settings)
        with catalog_held(settings):
            _kill_erasure_after_its_user_erased(env, client, creator)
        placed = client.post("/api/v1/orders/", headers=buyer["headers"], json=_order_of(service))
        assert (placed.status_code, placed.json()["fields"]) == (422, UNAVAILABLE), placed.text
        assert client.get("/api/v1/orders/", headers=buyer["headers"]).json()["count"] == 0


def test_an_erasure_killed_before_it_dropped_the_persons_kept_answers_is_named_by_verify_until_finished(
    backend: str, server: tuple[Server, Settings]
) -> None:
    """The answers kept for a person's `Idempotency-Key`s may show their e-mail and names (step 3 drops
    them); an erasure killed right after `User.Erased` left them for the day, and verify said nothing."""
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        api = Api(client, settings)  # type: ignore[arg-type]
        person = api.verified_user()
        keyed = person["headers"] | {"Idempotency-Key": "my-new-phone"}
        changed = client.patch("/api/v1/users/me/", headers=keyed, json={"phone": "+79991234567"})
        assert changed.status_code == 200 and changed.json()["email"] == person["email"], changed.text
        with sessions_held(settings) as user_erased:
            _kill_erasure_when(env, person, user_erased)

        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 1, verified.stdout + verified.stderr
        (finding,) = json.loads(verified.stdout)["findings"]
        assert finding["kind"] == "erasure", finding
        assert "1 answer(s) kept for their Idempotency-Keys" in finding["what"], finding
        assert f"`ugc users erase {person['username']} --yes` finishes it" in finding["what"], finding

        finished = run_ugc(env, "users", "erase", person["username"], "--yes")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
