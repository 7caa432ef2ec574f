"""Fixtures: every test that takes `backend` runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.backends import BACKENDS, environment, fresh_database, postgres_available
from tests.response_check import MISMATCHES, ResponseCheck
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.wiring import build_app, runtime


@pytest.fixture(params=BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not postgres_available():
        pytest.skip("UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
    return str(request.param)


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="module")
def database_url(backend: str, var_dir: Path) -> Iterator[str]:
    with fresh_database(backend, var_dir) as url:
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


def refused_id(field: str) -> dict[str, Any]:
    """The 422 body for a bad id in `field`."""
    return {"error": "Ошибка валидации данных.", "fields": {field: ["Ожидается положительное целое число."]}}


_addresses = (f"10.{a}.{b}.{c}" for a, b, c in itertools.product(range(1, 255), repeat=3))


def next_address() -> str:
    """A client address no other test uses."""
    return next(_addresses)


@dataclass
class Api:
    """A test client with helpers for the steps most tests begin with."""

    client: TestClient
    settings: Settings

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
        return response.json() | {"password": body["password"]}

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


def checked_client(app: Starlette, **options: Any) -> TestClient:
    """A test client of `app` whose every answer is held to what its route declares (tests/response_check.py)."""
    return TestClient(ResponseCheck(app), **options)


def new_client(settings: Settings, clock: MovableClock) -> TestClient:
    """A client from its own address, so one test's failed logins never throttle another's."""
    app = build_app(lambda: runtime(settings, clock=clock))
    return checked_client(app, client=(next_address(), 50000))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
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


@pytest.fixture(scope="module")
def app_client(settings: Settings, clock: MovableClock) -> Iterator[TestClient]:
    with new_client(settings, clock) as client:
        yield client


@pytest.fixture
def api(app_client: TestClient, settings: Settings) -> Api:
    return Api(app_client, settings)
