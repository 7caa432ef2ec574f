"""Read your writes, with the projections in this process, in another one, or in none."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from api.app import build_app
from tests.backends import environment
from tests.conftest import Api, checked_client, token_audience
from tests.orders_world import a_deal, place
from tests.servers import end_process, start_projector
from ugc.clock import MovableClock
from ugc.config import Settings, sqlite_path
from ugc.events import operator_actor
from ugc.wiring import runtime


def external(settings: Settings, timeout: float = 0.3) -> Settings:
    return dataclasses.replace(settings, projections="external", read_your_writes_timeout=timeout)


def _patient(settings: Settings) -> Starlette:
    """An app whose reads wait as long as a projector started just now may take to catch up."""
    return build_app(lambda: runtime(external(settings, timeout=60.0), clock=MovableClock()))


def test_without_a_runner_a_command_answers_503_rather_than_stale(settings: Settings) -> None:
    app = build_app(lambda: runtime(external(settings), clock=MovableClock()))
    with checked_client(app) as client:
        response = client.post(
            "/api/auth/register/", json={"username": "lonely", "email": "lonely@example.com", "password": "long-enough"}
        )
    assert response.status_code == 503
    assert response.json() == {"detail": "Сервис временно перегружен, повторите запрос позже."}
    assert response.headers["retry-after"] == "1"


@pytest.fixture
def projector(settings: Settings, backend: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`ugc project` in its own process, on the same database."""
    env = os.environ | environment(backend, settings.database_url, settings.var_dir) | {"UGC_PROJECTIONS": "external"}
    log = (tmp_path / "projector.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ugc.cli", "project"], env=env, stdout=log, stderr=log)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_a_runner_in_another_process_serves_read_your_writes(
    settings: Settings, projector: subprocess.Popen[bytes]
) -> None:
    app = build_app(lambda: runtime(external(settings, timeout=10.0), clock=MovableClock()))
    with checked_client(app) as client:
        api = Api(client, settings)
        for _ in range(5):
            user = api.verified_user()
            patched = client.patch("/api/v1/users/me/", headers=user["headers"], json={"bio": "обновлено"})
            assert patched.status_code == 200 and patched.json()["bio"] == "обновлено"
    assert projector.poll() is None, "the projector died"


def test_a_user_the_read_models_have_not_reached_is_answered_503_until_they_do(
    settings: Settings, backend: str, tmp_path: Path
) -> None:
    """The accounts log has the user, the `users` read model not yet (no projector runs, as after a
    start or a restore before the projections caught up): their token is good, so the answer is 503
    with Retry-After, never 401; once a projector catches up, the wait ends in 200. A well-signed
    token of a user the log does not have is still 401."""
    name = f"late_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery"}
    with checked_client(build_app(lambda: runtime(external(settings), clock=MovableClock()))) as client:
        assert client.post("/api/auth/register/", json=body).status_code == 503  # stored, not projected
        headers = {"Authorization": f"Bearer {Api(client, settings).login(name)['access']}"}
        lagging = client.get("/api/v1/users/me/", headers=headers)
        assert lagging.status_code == 503, lagging.text
        assert lagging.json() == {"detail": "Сервис временно перегружен, повторите запрос позже."}
        assert lagging.headers["retry-after"] == "1"
        now = int(time.time())
        stranger = jwt.encode(
            {"sub": "987654321", "typ": "access", "iat": now, "exp": now + 600, "jti": "j"}
            | {"aud": token_audience(settings)},
            settings.secret_key,
            algorithm="HS256",
        )
        unknown = client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {stranger}"})
        assert unknown.status_code == 401
        assert unknown.json() == {"detail": "Токен недействителен или просрочен."}
    env = os.environ | environment(backend, settings.database_url, settings.var_dir) | {"UGC_PROJECTIONS": "external"}
    projector = start_projector(env, tmp_path / "projector.log")
    try:
        with checked_client(_patient(settings)) as client:
            caught_up = client.get("/api/v1/users/me/", headers=headers)
    finally:
        end_process(projector)
    assert caught_up.status_code == 200, caught_up.text
    assert caught_up.json()["username"] == name


def test_an_auditor_the_read_models_have_not_reached_is_answered_503_not_404(
    settings: Settings, backend: str, tmp_path: Path
) -> None:
    """An auditor may read any order; one the accounts log has, with the role granted, but the `users`
    read model not yet is answered 503 (retry), not 404 (no such order) on an order they audit."""
    env = os.environ | environment(backend, settings.database_url, settings.var_dir) | {"UGC_PROJECTIONS": "external"}
    projector = start_projector(env, tmp_path / "projector.log")
    try:
        with checked_client(_patient(settings)) as client:
            order = place(Api(client, settings), a_deal(Api(client, settings)))["id"]
    finally:
        end_process(projector)
    name = f"auditor_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery"}
    with checked_client(build_app(lambda: runtime(external(settings), clock=MovableClock()))) as client:
        assert client.post("/api/auth/register/", json=body).status_code == 503  # stored, not projected
        client.app.state.services.accounts.grant_role(name, "auditor", operator_actor("test"))  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {Api(client, settings).login(name)['access']}"}
        lagging = client.get(f"/api/v1/orders/{order}/", headers=headers)
    assert lagging.status_code == 503, lagging.text
    assert lagging.headers["retry-after"] == "1"
    projector = start_projector(env, tmp_path / "projector.log")
    try:
        with checked_client(_patient(settings)) as client:
            caught_up = client.get(f"/api/v1/orders/{order}/", headers=headers)
    finally:
        end_process(projector)
    assert caught_up.status_code == 200, caught_up.text


def test_an_unexpected_error_is_a_500_without_a_traceback(settings: Settings) -> None:
    def explode(request: object) -> None:
        raise RuntimeError("secret internals")

    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    app.router.routes.append(Route("/boom/", explode))
    with checked_client(app, raise_server_exceptions=False) as client:
        response = client.get("/boom/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Внутренняя ошибка сервера."}
    assert "secret" not in response.text


def test_a_read_database_locked_past_the_busy_timeout_answers_503(
    settings: Settings, short_busy_timeout: float
) -> None:
    """SQLite: another connection (a rebuild's switch, an operator's sqlite3 shell) holds the write
    lock longer than the busy timeout (shortened: `short_busy_timeout`); a command that must write
    answers 503, not 500."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's file lock")
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        holder = sqlite3.connect(sqlite_path(settings.database_url), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            response = client.post(
                "/api/auth/register/",
                json={"username": "blocked", "email": "blocked@example.com", "password": "long-enough"},
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "Сервис временно перегружен, повторите запрос позже."}
