"""Fixtures: every test that takes `backend` runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import compileall
import itertools
import logging.config
import os
import re
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from pluggy import Result
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.app import build_app
from tests.backends import (
    BACKENDS,
    RUN_VARIABLE,
    drop_database,
    environment,
    finish_drops,
    fresh_database,
    postgres_available,
    template_name,
)
from tests.response_check import MISMATCHES, ResponseCheck
from ugc.accounts import VerificationToken, verification_token
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.deployment import deployment_id
from ugc.platform.dialect import Cursor
from ugc.platform.store import Accounts, EventStores
from ugc.wiring import migrate, runtime

# The project's packages, compiled once per run (see `compile_project`).
PACKAGES = ("ugc", "commands", "projections", "readmodels", "api", "tests")


def pytest_configure(config: pytest.Config) -> None:
    """Name this run (xdist's workers inherit the variable): its PostgreSQL template is its own."""
    if not hasattr(config, "workerinput"):
        os.environ[RUN_VARIABLE] = uuid.uuid4().hex[:12]
        compile_project()


def compile_project() -> None:
    """Write the bytecode of the project's modules before any worker starts. The suite runs `ugc` as
    a real process hundreds of times, and where PYTHONDONTWRITEBYTECODE is set (as on our machines)
    no process keeps what it compiled: each compiled the ~200 modules of the editable install from
    source again, ~0.2 s of CPU, a third of a short command's run. Python reads a .pyc even so, and
    ignores one whose source changed since; a tree that cannot be written to is left as it is."""
    root = Path(__file__).resolve().parent.parent
    for package in PACKAGES:
        compileall.compile_dir(root / package, quiet=2)


def pytest_sessionfinish(session: pytest.Session) -> None:
    finish_drops()
    if not hasattr(session.config, "workerinput") and postgres_available():  # after every worker
        drop_database(template_name())


@pytest.fixture(autouse=True)
def keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ugc` run in a test's process (`cli.main`) keeps pytest's logging: its own set-up would bind
    the log handlers to that test's captured stderr, closed once the test ends, and every later
    log line of the worker would fail to write ("I/O operation on closed file")."""
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)


@pytest.fixture(params=BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not postgres_available():
        pytest.skip("UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
    return str(request.param)


@pytest.fixture(scope="module")
def var_dir(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One per backend: a database's signed checkpoints (UGC_AUDIT_DIR) hold for that database only."""
    return tmp_path_factory.mktemp(f"var-{backend}")


@pytest.fixture(scope="module")
def database_url(backend: str, var_dir: Path) -> Iterator[str]:
    with fresh_database(backend, var_dir, migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def settings(backend: str, database_url: str, var_dir: Path) -> Settings:
    return Settings.from_env(environment(backend, database_url, var_dir))


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


# A body id is a JSON integer from 1 to 2**63 - 1: a string, a boolean, a fraction, zero, a negative
# and a number past BIGINT are each refused with the same Russian message.
BAD_BODY_IDS: list[Any] = ["5", True, 5.5, 0, -1, 2**63]


def refused(field: str, text: str) -> dict[str, Any]:
    """The 422 body that refuses `field` with `text`."""
    return {"error": "Ошибка валидации данных.", "fields": {field: [text]}}


def version_of(response: Any) -> int:
    """The version an answer's ETag names (`"<version>.<16 hex digits>"`)."""
    tag = re.fullmatch(r'"([0-9]+)\.[0-9a-f]{16}"', response.headers["etag"])
    assert tag is not None, response.headers["etag"]
    return int(tag[1])


def refused_id(field: str) -> dict[str, Any]:
    """The 422 body for a bad id in `field`."""
    return refused(field, "Ожидается положительное целое число.")


_addresses = (f"10.{a}.{b}.{c}" for a, b, c in itertools.product(range(1, 255), repeat=3))


def next_address() -> str:
    """A client address no other test uses."""
    return next(_addresses)


@dataclass
class Api:
    """A test client with helpers for the steps most tests begin with."""

    client: TestClient
    settings: Settings

    def conversation(self, first: dict[str, Any], second: dict[str, Any]) -> int:
        """The id of the conversation `first` starts with `second` (or already has)."""
        started = self.client.post(
            "/api/v1/conversations/", headers=first["headers"], json={"recipient_id": second["id"]}
        )
        assert started.status_code in (200, 201), started.text
        number: int = started.json()["id"]
        return number

    def register(self, **fields: Any) -> dict[str, Any]:
        name = fields.pop("username", None) or f"user_{uuid.uuid4().hex[:10]}"
        body = {
            "username": name,
            "email": f"{name}@example.com",
            "password": "correct-horse-battery",
            "first_name": "Иван",
            "last_name": "Петров",
        } | fields
        response = self.client.post("/api/auth/register/", json=body)
        assert response.status_code == 201, response.text
        registered: dict[str, Any] = response.json()
        return registered | {"password": body["password"]}

    def login(self, username: str, password: str = "correct-horse-battery") -> dict[str, str]:
        response = self.client.post("/api/auth/token/", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        tokens: dict[str, str] = response.json()
        return tokens

    def user(self, **fields: Any) -> dict[str, Any]:
        """A registered user with `headers` carrying its access token."""
        user = self.register(**fields)
        tokens = self.login(user["username"], user["password"])
        return user | tokens | {"headers": {"Authorization": f"Bearer {tokens['access']}"}}

    def verified_user(self, **fields: Any) -> dict[str, Any]:
        user = self.user(**fields)
        token = mailed_token(self.settings, user["email"])
        assert self.client.post("/api/auth/verify-email/", json={"token": token}).status_code == 200
        return user

    def creator(self, **fields: Any) -> dict[str, Any]:
        """A verified user with a creator profile (`profile`)."""
        user = self.verified_user(**fields)
        response = self.client.post(
            "/api/v1/users/me/creator-profile/", headers=user["headers"], json={"specialization": "Видео"}
        )
        assert response.status_code == 201, response.text
        return user | {"profile": response.json()}

    def service(self, creator: dict[str, Any], **fields: Any) -> dict[str, Any]:
        categories = self.client.get("/api/v1/categories/").json()["results"]
        body = {
            "title": "Видеообзор товара",
            "description": "Сниму обзор на ваш товар",
            "category_id": categories[0]["id"],
            "base_price": 1000,
            "delivery_time": 7,
            "options": [
                {"name": "Срочно", "description": "За 2 дня", "price": 200},
                {"name": "Субтитры", "description": "", "price": 150.5},
            ],
            "tags": ["обзор"],
        } | fields
        response = self.client.post("/api/v1/services/", headers=creator["headers"], json=body)
        assert response.status_code == 201, response.text
        service: dict[str, Any] = response.json()
        return service


LINK = re.compile(r"/verify-email\?token=([A-Za-z0-9._-]*[A-Za-z0-9_-])")


def mailed_token(settings: Settings, email: str, timeout: float = 5.0) -> str:
    """The token in the verification mail sent to `email` (the mail is written by a projection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in Path(settings.outbox_dir).glob("*.eml"):
            mail = message_from_bytes(path.read_bytes())
            if mail["To"] == email:
                payload = mail.get_payload(decode=True)
                assert isinstance(payload, bytes)
                body = payload.decode()
                assert f"{settings.public_url}/verify-email?token=" in body
                match = LINK.search(body)
                assert match is not None, body
                return match.group(1)
        time.sleep(0.02)
    raise AssertionError(f"no verification mail to {email}")


def issued_tokens(accounts: Application[UUID]) -> list[VerificationToken.Issued]:
    """Every verification token of the accounts log, oldest first, as its mails would carry them."""
    notifications = accounts.recorder.select_notifications(start=1, limit=10**9)
    events = (accounts.mapper.to_domain_event(notification) for notification in notifications)
    return [event for event in events if isinstance(event, VerificationToken.Issued)]


def newest_link(settings: Settings, user_id: int) -> str:
    """The token of the newest verification link of `user_id`: the one that verifies, whether or not
    its mail went yet (a mail waits its turn, and one a newer link voided before its turn is not sent)."""
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        newest = [e for e in issued_tokens(stores[Accounts.name]) if e.user_number == user_id][-1]
    finally:
        stores.close()
    return verification_token(newest.key, settings.secret_key)


def checked_client(app: Starlette, **options: Any) -> TestClient:
    """A test client of `app` whose every answer is held to what its route declares (tests/response_check.py)."""
    return TestClient(ResponseCheck(app), **options)


def new_client(settings: Settings, clock: MovableClock) -> TestClient:
    """A client from its own address, so one test's failed logins never throttle another's."""
    app = build_app(lambda: runtime(settings, clock=clock))
    return checked_client(app, client=(next_address(), 50000))


# `make test` runs the suite on two pytest-xdist workers (`--dist loadgroup`); a group of tests (see
# `xdist_group`) runs whole on one worker, so module-scoped databases and servers are made once.
# These modules start several `ugc serve` processes (or `--workers N`) and `ugc project`s each: they
# form one group, run one after another on one worker, so together with the other worker's tests they
# stay within CI's max_connections of 100 (test_connection_budget alone may take 80). A new module
# that starts several processes belongs here.
CONNECTION_HEAVY = {
    "test_faults",
    "test_e2e",
    "test_connection_budget",
    "test_idempotency_crash",
    "test_throttle_crash",
    "test_multiprocess_realtime",
    "test_leases",
    "test_lease_termination",
    "test_rebuild_under_load",
    "test_push_readable",
}
# The slowest modules start first (in this order, from `--durations` of whole runs: a serial one, then
# 2026-12-07's on two workers; the last seven from that day's later run, where each spent 8-15 s in a
# few tests and, not listed, came in the collection's order, `test_upload_key_crash` among the last
# ten), so that no worker is left with a long one at the end while the other idles; the rest keep their
# order.
SLOW_FIRST = [
    "connection_heavy",
    "test_schemathesis",
    "test_backup_restore",
    "test_browser",
    "test_e2e_realtime",
    "test_abandoned_uploads",
    "test_cli",
    "test_creator_skill_races",
    "test_data_key_rewrap",
    "test_forced_stop",
    "test_key_rotation",
    "test_graceful_stop",
    "test_database_outages",
    "test_order_model",
    "test_projection_quarantine",
    "test_order_races",
    "test_replay",
    "test_portfolio_races",
    "test_idempotency",
    "test_throttle",
    "test_personal_data",
    "test_api_services",
    "test_api_orders",
    "test_projections",
    "test_order_time",
    "test_consistency",
    "test_upload_key_crash",
    "test_mail_delivery",
    "test_erasure_interrupted",
    "test_overload",
    "test_metrics_files",
    "test_realtime_hub",
    "test_read_table_locks",
]


def xdist_group(item: pytest.Item) -> str:
    """The module, and the backend when the test takes one: the module-scoped database, app and
    server are made per backend anyway, so a module's SQLite and PostgreSQL halves may run apart.
    No "]" in a name: xdist finds the group after the last "@" of a test's id only when no "]" follows
    it, and took "test_x[sqlite]@test_x[sqlite]" for a group of one test (each worker then made the
    module's database, app and server for itself)."""
    if not isinstance(item, pytest.Function):
        return item.nodeid
    module = item.module.__name__.rsplit(".", 1)[-1]
    if module in CONNECTION_HEAVY:
        return "connection_heavy"
    backend = item.callspec.params.get("backend") if hasattr(item, "callspec") else None
    return f"{module}.{backend}" if backend else module


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {group: place for place, group in enumerate(SLOW_FIRST)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    # A stable sort: each module's tests keep pytest's order (grouped by their `backend` parameter).
    items.sort(key=lambda item: rank.get(xdist_group(item).split(".")[0], len(rank)))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: the controller, once a worker has collected
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Stop a run whose tests `--dist loadgroup` would not group. pytest-xdist 3.8 names a test's group
    in its id ("...@connection_heavy"), which pytest 9.2 no longer lets it change (pytest-xdist#1386):
    every test was scheduled alone, with no error, and the CONNECTION_HEAVY modules ran on both workers
    at once, until PostgreSQL refused connections ("too many clients already")."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [nodeid for nodeid in ids if nodeid.rfind("@") <= nodeid.rfind("]")]  # xdist's own test
    if ungrouped:
        pytest.exit(f"--dist loadgroup groups no test here (pytest-xdist#1386), e.g. {ungrouped[0]}", returncode=4)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Result[None], None]:
    """Fail a test whose answers did not match their routes even where no request raised it.

    A client that swallows server errors, or a WebSocket frame sent from a socket's own task, reaches
    the test as something else (or not at all); the mismatch recorded for it makes the test fail.
    """
    MISMATCHES.clear()
    outcome = yield
    if MISMATCHES and outcome.excinfo is None:
        found = "\n".join(MISMATCHES)
        MISMATCHES.clear()
        outcome.force_exception(AssertionError(f"answers that are not what their routes declare:\n{found}"))


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The module's database, migrated, through a `Database` of the test's own."""
    database = Database(settings.database_url)
    migrate(database)
    try:
        yield database
    finally:
        database.close()


def token_audience(settings: Settings) -> str:
    """The `aud` of the tokens of the module's deployment, for a test that forges one of its own."""
    database = Database(settings.database_url)
    try:
        return deployment_id(database)
    finally:
        database.close()


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    """SQLite's busy timeout, 2 s instead of 10, for the connections an app made in the test opens (the
    read side's `Database` and the event stores'): a test that holds a file's write lock past the
    timeout waits it out whole, and what follows (SQLITE_BUSY, a 503) is the same after 2 s as after 10."""
    seconds = 2.0
    monkeypatch.setattr("ugc.platform.database.SQLITE_BUSY_TIMEOUT", seconds)
    monkeypatch.setattr("ugc.platform.store.SQLITE_BUSY_TIMEOUT", seconds)
    return seconds


@pytest.fixture(scope="module")
def app_client(settings: Settings, clock: MovableClock) -> Iterator[TestClient]:
    with new_client(settings, clock) as client:
        yield client


@pytest.fixture
def api(app_client: TestClient, settings: Settings) -> Api:
    return Api(app_client, settings)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the cursors of this test execute (each still executed)."""
    executed: list[str] = []
    execute = Cursor.execute

    def counted(self: Cursor, sql: str, params: Any = ()) -> Cursor:
        executed.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(Cursor, "execute", counted)
    return executed
