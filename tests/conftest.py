"""Fixtures: every test that takes `backend` runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.backends import BACKENDS, environment, fresh_database, postgres_available
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


_addresses = (f"10.{a}.{b}.{c}" for a, b, c in itertools.product(range(1, 255), repeat=3))


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


def new_client(settings: Settings, clock: MovableClock) -> TestClient:
    """A client from its own address, so one test's failed logins never throttle another's."""
    app = build_app(lambda: runtime(settings, clock=clock))
    return TestClient(app, client=(next(_addresses), 50000))


@pytest.fixture(scope="module")
def app_client(settings: Settings, clock: MovableClock) -> Iterator[TestClient]:
    with new_client(settings, clock) as client:
        yield client


@pytest.fixture
def api(app_client: TestClient, settings: Settings) -> Api:
    return Api(app_client, settings)
