"""Rotating UGC_SECRET_KEY: with the old key as UGC_SECRET_KEY_PREVIOUS, what it signed still works
while everything new is signed with the new key; once the old key is dropped, what it signed is 401.

Real `ugc serve` processes on one database, restarted with each configuration in turn.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from tests.backends import environment, fresh_database
from tests.conftest import mailed_token
from tests.servers import start_server
from ugc.config import Settings

OLD_KEY = "old-secret-key-that-is-long-enough-0123456789"
NEW_KEY = "new-secret-key-that-is-long-enough-9876543210"
PASSWORD = "correct-horse-battery"
INVALID = (401, {"detail": "Токен недействителен или просрочен."})


def _me(client: httpx.Client, access: str) -> tuple[int, object]:
    answer = client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {access}"})
    return answer.status_code, answer.json()


def _refresh(client: httpx.Client, refresh: str) -> httpx.Response:
    return client.post("/api/auth/token/refresh/", json={"refresh": refresh})


def _key_id(token: str) -> str:
    kid = jwt.get_unverified_header(token)["kid"]
    assert isinstance(kid, str)
    return kid


def _signed_in(client: httpx.Client, name: str) -> dict[str, str]:
    user = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    assert client.post("/api/auth/register/", json=user).status_code == 201
    tokens = client.post("/api/auth/token/", json={"username": name, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    pair: dict[str, str] = tokens.json()
    return pair


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_a_previous_secret_key_keeps_sessions_until_it_is_dropped(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        base = environment(backend, url, tmp_path)
        with start_server(base | {"UGC_SECRET_KEY": OLD_KEY}, log_dir=tmp_path) as server:
            with httpx.Client(base_url=server.url, timeout=20) as client:
                anna, boris = _signed_in(client, "anna"), _signed_in(client, "boris")
            link = mailed_token(Settings.from_env(base | {"UGC_PUBLIC_URL": server.url}), "anna@example.com")
        old_key_id = _key_id(anna["access"])

        rotated = base | {"UGC_SECRET_KEY": NEW_KEY, "UGC_SECRET_KEY_PREVIOUS": OLD_KEY}
        with start_server(rotated, log_dir=tmp_path) as server, httpx.Client(base_url=server.url) as client:
            assert _me(client, anna["access"])[0] == 200
            refreshed = _refresh(client, anna["refresh"])
            assert refreshed.status_code == 200, refreshed.text
            anna = refreshed.json()
            assert _key_id(anna["access"]) == _key_id(anna["refresh"]) != old_key_id
            assert _me(client, anna["access"])[0] == 200
            # The link mailed before the rotation still verifies the address.
            verified = client.post("/api/auth/verify-email/", json={"token": link})
            assert verified.status_code == 200, verified.text

        with start_server(base | {"UGC_SECRET_KEY": NEW_KEY}, log_dir=tmp_path) as server:
            with httpx.Client(base_url=server.url) as client:
                assert _me(client, anna["access"])[0] == 200
                assert _refresh(client, anna["refresh"]).status_code == 200
                assert _me(client, boris["access"]) == INVALID
                refused = _refresh(client, boris["refresh"])
                assert (refused.status_code, refused.json()) == INVALID
