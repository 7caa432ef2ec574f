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
from tests.test_api_creator_skills import added, reference_skills
from tests.test_erasure_races import SQLITE_AT_APPEND, catalog_held
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
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not reached():
            if erasing.poll() is not None:
                told = erasing.stderr.read() if erasing.stderr else ""
                raise AssertionError(f"the erasure ended before the point it was to be killed at: {told}")
            time.sleep(0.05)
    finally:
        erasing.send_signal(signal.SIGKILL)
        erasing.wait()


def _kill_erasure_after_its_user_erased(
    env: dict[str, str], settings: Settings, person: dict[str, str], waiting: Callable[[], None]
) -> None:
    """SIGKILL `ugc users erase` on `person` once `User.Erased` is stored and the erasure waits at the
    catalog's lock, which the caller holds (`catalog_held`, its `waiting`), so it withdrew nothing."""
    with _user_erased_stored(settings) as user_erased:

        def erased_and_waiting() -> bool:
            if not user_erased():
                return False
            waiting()
            return True

        _kill_erasure_when(env, person, erased_and_waiting)


@contextmanager
def _user_erased_stored(settings: Settings) -> Iterator[Callable[[], bool]]:
    """Yield whether a `User.Erased` is stored."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as looking:
            query = "SELECT count(*) FROM accounts_events WHERE topic = 'ugc.User.Erased'"
            yield lambda: looking.execute(query).fetchone() != (0,)
        return
    main = Path(sqlite_path(url))
    with closing(sqlite3.connect(main.with_name(f"{main.stem}.accounts{main.suffix}"))) as looking:
        query = "SELECT count(*) FROM stored_events WHERE topic = 'ugc.User.Erased'"
        yield lambda: looking.execute(query).fetchone() != (0,)


class _SQLiteSteps:
    """Walks `ugc users erase` through its writes on SQLite, which shows no waiter at a lock: it writes
    the accounts file (the keys), the main one (its announcement), the accounts file (`User.Erased`),
    then the main one (ending the sessions); holding one file's write lock while the erasure waits at
    the other's stops it at a known step.
    """

    def __init__(self, settings: Settings, person: int) -> None:
        main = Path(sqlite_path(settings.database_url))
        accounts = main.with_name(f"{main.stem}.accounts{main.suffix}")
        self.main = sqlite3.connect(main, isolation_level=None)
        self.accounts = sqlite3.connect(accounts, isolation_level=None)
        self.accounts_wal = accounts.with_name(f"{accounts.name}-wal")
        self.person = person
        self.main.execute("BEGIN IMMEDIATE")  # the erasure stops at its announcement, its keys destroyed
        self.step = "keys"

    def keys_destroyed(self) -> bool:
        """Once the keys are destroyed: the accounts file held instead, so it stops at `User.Erased`."""
        if self.step == "keys":
            found = "SELECT count(*) FROM data_keys WHERE person = ? AND wrapped IS NULL"
            if self.accounts.execute(found, (self.person,)).fetchone() == (0,):
                return False
            # Its checkpoint of the accounts file after the keys waits for any writer there, and
            # empties the file's write-ahead log once done.
            deadline = time.monotonic() + 4 * SQLITE_AT_APPEND
            while self.accounts_wal.exists() and self.accounts_wal.stat().st_size and time.monotonic() < deadline:
                time.sleep(0.01)
            self.accounts.execute("BEGIN IMMEDIATE")
            self.main.execute("ROLLBACK")
            self.step = "announcement"
        return True

    def announced(self) -> bool:
        """Once the keys are destroyed and the erasure announced, stopped at `User.Erased`."""
        if not self.keys_destroyed():
            return False
        marked = "SELECT count(*) FROM erasure_marks WHERE user_id = ?"
        return self.step != "announcement" or self.main.execute(marked, (self.person,)).fetchone() != (0,)

    def user_erased(self) -> bool:
        """Once `User.Erased` is stored: the main file held again, so it stops at ending the sessions."""
        if self.step != "user":
            if not self.announced():
                return False
            self.main.execute("BEGIN IMMEDIATE")
            self.accounts.execute("ROLLBACK")
            self.step = "user"
        found = "SELECT count(*) FROM stored_events WHERE topic = 'ugc.User.Erased'"
        return bool(self.accounts.execute(found).fetchone() != (0,))

    def close(self) -> None:
        for connection in (self.main, self.accounts):
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            connection.close()


def _kill_erasure_before_its_sessions_ended(env: dict[str, str], settings: Settings, person: dict[str, Any]) -> None:
    """SIGKILL `ugc users erase` on `person` once `User.Erased` is stored, before it ends their sessions
    (at the lock that takes: the `refresh_families` table on PostgreSQL, the main file on SQLite)."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url) as held, _user_erased_stored(settings) as user_erased:
            held.execute("LOCK TABLE refresh_families IN EXCLUSIVE MODE")
            _kill_erasure_when(env, person, user_erased)
            held.rollback()
        return
    steps = _SQLiteSteps(settings, int(person["id"]))
    try:
        _kill_erasure_when(env, person, steps.user_erased)
    finally:
        steps.close()


@contextmanager
def _killed_with_keys_destroyed(env: dict[str, str], settings: Settings, person: dict[str, Any]) -> Iterator[None]:
    """SIGKILL `ugc users erase` on `person` once it destroyed their data keys and waits to append
    `User.Erased` (at the accounts log's lock); the block runs with that erasure cut short: tombstones
    of the person's keys, and no `User.Erased`."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url) as held, psycopg.connect(url, autocommit=True) as looking:
            held.execute("LOCK TABLE accounts_events IN EXCLUSIVE MODE")
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'accounts_events'::regclass"
            _kill_erasure_when(env, person, lambda: looking.execute(waiting).fetchone() != (0,))
            held.rollback()
    else:
        steps = _SQLiteSteps(settings, int(person["id"]))
        try:
            _kill_erasure_when(env, person, lambda: _at_user_erased(steps))
        finally:
            steps.close()
    with _user_erased_stored(settings) as user_erased:
        assert not user_erased()
    yield


def _at_user_erased(steps: _SQLiteSteps) -> bool:
    """Whether the erasure destroyed the keys and waits to append `User.Erased`: once it announced the
    erasure, or a while after its keys for an erasure that does not announce it before the event."""
    if not steps.keys_destroyed():
        return False
    deadline = time.monotonic() + 4 * SQLITE_AT_APPEND
    while not steps.announced() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


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
        with catalog_held(settings) as waiting:
            _kill_erasure_after_its_user_erased(env, settings, creator, waiting)
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
        with catalog_held(settings) as waiting:
            _kill_erasure_after_its_user_erased(env, settings, creator, waiting)
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
        _kill_erasure_before_its_sessions_ended(env, settings, person)

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


def test_a_token_kept_by_a_server_is_refused_once_an_erasure_cut_short_destroyed_the_persons_keys(
    backend: str, server: tuple[Server, Settings]
) -> None:
    """The erasure told the servers only once `User.Erased` was stored: one killed after the keys left
    every server that had the person's standing honouring their token for the rest of its 30 s."""
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        person = Api(client, settings).verified_user()  # type: ignore[arg-type]
        assert client.get("/api/v1/users/me/", headers=person["headers"]).status_code == 200  # standing kept
        with _killed_with_keys_destroyed(env, settings, person):
            refused = _eventually(lambda: client.get("/api/v1/users/me/", headers=person["headers"]).status_code)
            assert refused == 401

        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 1, verified.stdout + verified.stderr
        # Also a read model's finding: the person's read rows show what their destroyed keys no longer open.
        (finding,) = [finding for finding in json.loads(verified.stdout)["findings"] if finding["kind"] == "erasure"]
        assert "is not erased in the database" in finding["what"], finding
        finished = run_ugc(env, "users", "erase", person["username"], "--yes")  # as verify asks
        assert finished.returncode == 0, finished.stdout + finished.stderr
        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def _heard(client: httpx.Client, person: dict[str, Any]) -> None:
    """Once the server heard of the person's erasure (SQLite's poll takes up to 0.1 s): their token refused."""
    assert _eventually(lambda: client.get("/api/v1/users/me/", headers=person["headers"]).status_code) == 401


def _eventually(status: Callable[[], int], wanted: int = 401, within: float = 5.0) -> int:
    """`status()` once it is `wanted`, or its last answer after `within` seconds: far inside the 30 s a
    server keeps a standing (commands/standing.py), so a refusal seen here is no expiry's."""
    deadline = time.monotonic() + within
    while (seen := status()) != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_the_service_of_a_creator_whose_erasure_was_cut_short_after_their_keys_takes_no_order(
    backend: str, server: tuple[Server, Settings]
) -> None:
    """Placing asked only whether the creator's `User.Erased` was stored: an erasure killed after the
    creator's keys left their service taking orders (201) from anyone until an operator erased again."""
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        creator, service, buyer = _creator_service_and_buyer(client, settings)
        placed = client.post("/api/v1/orders/", headers=buyer["headers"], json=_order_of(service))
        assert placed.status_code == 201, placed.text  # before: the server may keep what it read of the creator
        with _killed_with_keys_destroyed(env, settings, creator):
            _heard(client, creator)
            placed = client.post("/api/v1/orders/", headers=buyer["headers"], json=_order_of(service))
            assert (placed.status_code, placed.json().get("fields")) == (422, UNAVAILABLE), placed.text


def test_the_public_page_of_a_creator_whose_erasure_was_cut_short_after_their_keys_reads_as_erased(
    backend: str, server: tuple[Server, Settings]
) -> None:
    """The page's fields come from the read row, blanked only by the projection of `User.Erased`: an
    erasure killed after the creator's keys left their specialization, experience and links public,
    and their skills and portfolio with `?detail=true`, until an operator erased again."""
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        api = Api(client, settings)  # type: ignore[arg-type]
        creator = api.creator()
        added(api, creator, reference_skills(client)["Photoshop"]["id"])
        page = f"/api/v1/creators/{creator['profile']['id']}/"
        shown = client.get(page)
        assert shown.json()["specialization"] == "Видео", shown.text
        with _killed_with_keys_destroyed(env, settings, creator):
            _heard(client, creator)
            cut_short = client.get(page, params={"detail": "true"})
            revalidated = client.get(page, headers={"If-None-Match": shown.headers["ETag"]})
        blank = {"specialization": "", "experience": "", "portfolio_link": "", "social_links": {}}
        assert cut_short.status_code == 200 and cut_short.json() | blank == cut_short.json(), cut_short.text
        assert (cut_short.json()["skills"], cut_short.json()["portfolio"]) == ([], [])
        assert revalidated.status_code == 200 and revalidated.json() | blank == revalidated.json()

        finished = run_ugc(env, "users", "erase", creator["username"], "--yes")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        erased = client.get(page, params={"detail": "true"})
        assert {**erased.json(), "updated_at": None} == {**cut_short.json(), "updated_at": None}
