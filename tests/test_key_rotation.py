"""Rotating the keys: with the old key as `*_PREVIOUS`, what it signed still holds while everything
new is signed with the new key; once the old key is dropped, what it signed is refused.

UGC_SECRET_KEY: real `ugc serve` processes on one database, restarted with each configuration in
turn. UGC_AUDIT_KEY: the real CLI (`ugc audit checkpoint`, `users erase`, `backup`, `verify`, `restore`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.backends import environment, fresh_database
from tests.conftest import mailed_token
from tests.servers import run_ugc, start_server
from tests.test_backup_restore import new_target
from ugc.config import Settings
from ugc.platform.checkpoints import read_checkpoint

OLD_KEY = "old-secret-key-that-is-long-enough-0123456789"
NEW_KEY = "new-secret-key-that-is-long-enough-9876543210"
OLD_AUDIT_KEY = "old-audit-key-that-is-long-enough-1357924680"
NEW_AUDIT_KEY = "new-audit-key-that-is-long-enough-0864297531"
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


def _ugc(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = run_ugc(env, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _verified(env: dict[str, str]) -> dict[str, Any]:
    done = run_ugc(env, "verify", "--json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if report["ok"] else 1), done.stderr
    return report


def _checkpoint(env: dict[str, str]) -> Path:
    return Path(_ugc(env, "audit", "checkpoint").split(": ", 1)[1].strip())


@pytest.mark.timeout(300)
def test_a_previous_audit_key_keeps_what_it_signed_verified_until_it_is_dropped(backend: str, tmp_path: Path) -> None:
    audit, backup = tmp_path / "audit", tmp_path / "backup"
    (tmp_path / "live").mkdir()
    with fresh_database(backend, tmp_path / "live") as url:
        base = environment(backend, url, tmp_path / "live") | {"UGC_AUDIT_DIR": str(audit)}
        old = base | {"UGC_AUDIT_KEY": OLD_AUDIT_KEY}
        _ugc(old, "migrate")
        _ugc(old, "users", "create", "anna", "--email", "anna@example.com", stdin=PASSWORD)
        _ugc(old, "users", "erase", "anna", "--yes")  # a journal line signed with the old key
        signed_before = _checkpoint(old)
        _ugc(old, "backup", str(backup))

        rotated = base | {"UGC_AUDIT_KEY": NEW_AUDIT_KEY, "UGC_AUDIT_KEY_PREVIOUS": OLD_AUDIT_KEY}
        report = _verified(rotated)
        assert report["ok"] and report["checkpoints"] == 1, report["findings"]
        signed_after = _checkpoint(rotated)
        assert read_checkpoint(signed_after, (NEW_AUDIT_KEY,)).signed
        assert not read_checkpoint(signed_after, (OLD_AUDIT_KEY,)).signed
        assert "1 journaled erasure(s)" in _ugc(rotated, "users", "erase", "--replay")

        retired = base | {"UGC_AUDIT_KEY": NEW_AUDIT_KEY}
        found = [finding["what"] for finding in _verified(retired)["findings"]]
        assert len(found) == 2, found
        assert f"{signed_before.name}: the signature does not match UGC_AUDIT_KEY" in found[0]
        assert "erasures.jsonl line 1: the signature does not match UGC_AUDIT_KEY" in found[1]
        assert "signed with another key" in found[0] and "signed with another key" in found[1]

    for name, env, refused in [("refused", retired, True), ("restored", rotated, False)]:
        with new_target(backend, tmp_path / name) as target:
            environment_there = env | environment(backend, target, tmp_path / name)
            done = run_ugc(environment_there, "restore", str(backup), "--yes", timeout=240)
            if refused:
                assert done.returncode == 2 and "is not signed with this UGC_AUDIT_KEY" in done.stderr, done
            else:
                assert done.returncode == 0, (done.stdout, done.stderr)
