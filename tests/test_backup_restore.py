"""The README's "Backups and restores", done as an operator would, with real `ugc` processes (both backends).

A deployment with orders and users is backed up (PostgreSQL: `pg_dump`; SQLite: the online backup
of each file while it is in use), a person is erased after the backup and a checkpoint signed, and
the backup is restored into a new database. `ugc verify` names the cut end against the newer
checkpoint; once the operator moves that checkpoint aside, `ugc users erase --replay` erases the
person again from the journal, and the restored deployment verifies clean with its orders there.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.backends import DATA_KEY, POSTGRES_URL, drop_database, environment, fresh_database, postgres_url
from tests.servers import run_ugc, start_server
from ugc.accounts import User
from ugc.config import sqlite_path
from ugc.ids import aggregate_id
from ugc.platform.store import EventStores

PERSON = "petr_shop"  # a client of the demo world, with orders
PASSWORD = "demo-password-1"
AUDIT_KEY = "test-audit-key-that-is-long-enough-1357924680"
# The SQLite files in the README's order: the read models first, then each log after those it refers to.
SQLITE_FILES = ("", ".messaging", ".orders", ".files", ".catalog", ".accounts")


def ugc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run_ugc(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def a_port() -> int:
    """A free port of 18400-18499, the range these tests may use."""
    for port in range(18400, 18500):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError("no free port in 18400-18499")


def back_up(backend: str, url: str, into: Path) -> None:
    """The README's backup command(s), while the deployment is in use."""
    into.mkdir()
    if backend == "postgres":
        subprocess.run(["pg_dump", "--format=custom", f"--file={into / 'ugc.dump'}", url], check=True)
        return
    main = sqlite_path(url)
    for part in SQLITE_FILES:
        name = f"{main.stem}{part}{main.suffix}"
        subprocess.run(["sqlite3", str(main.with_name(name)), f".backup '{into / name}'"], check=True)


@contextmanager
def restored(backend: str, backup: Path, directory: Path) -> Iterator[str]:
    """The backup restored into a new database; its URL."""
    if backend == "sqlite":
        directory.mkdir()
        for file in backup.iterdir():
            shutil.copy(file, directory / file.name)
        yield f"sqlite:///{directory / 'ugc.sqlite3'}"
        return
    name = f"ugc_test_restored_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run(
            ["pg_restore", "--exit-on-error", f"--dbname={postgres_url(name)}", str(backup / "ugc.dump")], check=True
        )
        yield postgres_url(name)
    finally:
        drop_database(name)


def deployment(backend: str, url: str, var_dir: Path, audit_dir: Path) -> dict[str, str]:
    """One deployment's environment; the audit directory (checkpoints, erasure journal) is the one kept
    outside the database, shared by the deployment and its restore as the README says."""
    return environment(backend, url, var_dir) | {"UGC_AUDIT_KEY": AUDIT_KEY, "UGC_AUDIT_DIR": str(audit_dir)}


def verified(env: dict[str, str]) -> dict[str, Any]:
    done = run_ugc(env, "verify", "--json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if report["ok"] else 1), done.stderr
    return report


def signed_position(checkpoint: Path, context: str) -> int:
    return int(json.loads(checkpoint.read_text())["heads"][context]["position"])


def test_a_restore_from_before_an_erasure_verifies_as_cut_off_and_the_replayed_journal_erases_again(
    backend: str, tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    (tmp_path / "live").mkdir()
    with fresh_database(backend, tmp_path / "live") as live_url:
        live = deployment(backend, live_url, tmp_path / "live", audit)
        ugc(live, "seed", "--demo")
        with start_server(live, a_port()):  # backed up, and the person erased, while it serves
            ugc(live, "audit", "checkpoint")
            backup_time = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # checkpoint names are written times
            back_up(backend, live_url, tmp_path / "backup")
            ugc(live, "users", "erase", PERSON, "--yes")
            after = Path(ugc(live, "audit", "checkpoint").stdout.split(": ", 1)[1].strip())

        with restored(backend, tmp_path / "backup", tmp_path / "restored") as url:
            env = deployment(backend, url, tmp_path / "restored", audit)
            # Before anything writes to it: verify names the restore as what it is, the log's end cut off.
            report = verified(env)
            assert not report["ok"]
            [finding] = report["findings"]
            assert (finding["kind"], finding["context"], finding["position"]) == (
                "checkpoint",
                "accounts",
                signed_position(after, "accounts"),
            )
            assert "events were cut off the end of the log, or the database was restored" in finding["what"]

            # The README's acknowledgement: the checkpoints written since the backup began moved aside.
            aside = audit / f"restored-{backup_time}"
            aside.mkdir()
            for checkpoint in audit.glob("checkpoint-*.json"):
                if checkpoint.name > f"checkpoint-{backup_time}":
                    checkpoint.rename(aside / checkpoint.name)
            assert (aside / after.name).exists()

            with start_server(env, a_port()) as server:
                # Restored, the person's keys are back: they sign in and read their own e-mail again.
                token = _signed_in(server.url)
                assert token is not None, "the backup predates the erasure: the person can sign in"
                me = httpx.get(f"{server.url}/api/v1/users/me/", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200 and me.json()["email"], me.text

                replay = ugc(env, "users", "erase", "--replay")
                assert "1 journaled erasure(s), 1 carried out again" in replay.stdout, replay.stdout

                assert _signed_in(server.url) is None
                _read_as_erased(url, replay.stdout)
                assert _refused_within(server.url, token, timeout=45)
                users = ugc(env, "users", "list").stdout
                row = next(line for line in users.splitlines() if f" {PERSON} " in line)
                assert "@" not in row, row  # the read row's e-mail is blank
                listed = httpx.get(f"{server.url}/api/v1/orders/", headers=_headers(server.url, "ivan_photo"))

                again = ugc(env, "users", "erase", "--replay")  # nothing left to do, and it says so
                assert "1 journaled erasure(s), 0 carried out again" in again.stdout

                report = verified(env)
                assert report["ok"], report["findings"]
            # The orders are there: the demo's placed orders, in the audit record and in the listing.
            assert listed.status_code == 200 and listed.json()["count"] > 0, listed.text
            history = json.loads(ugc(env, "history", "order", "1", "--json").stdout)
            assert history["count"] > 0


def _read_as_erased(url: str, replayed: str) -> None:
    """The write side, which every replay and projection reads through, opens none of their sealed fields."""
    number = int(replayed.split(f"{PERSON} (id ", 1)[1].split(")", 1)[0])
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        user: User = stores.accounts.repository.get(aggregate_id("user", number))
    finally:
        stores.close()
    assert (user.erased, user.email, user.first_name, user.last_name, user.phone, user.bio) == (
        True,
        "",
        "",
        "",
        "",
        "",
    )


def _signed_in(base: str, username: str = PERSON) -> str | None:
    answer = httpx.post(f"{base}/api/auth/token/", json={"username": username, "password": PASSWORD})
    return str(answer.json()["access"]) if answer.status_code == 200 else None


def _headers(base: str, username: str) -> dict[str, str]:
    token = _signed_in(base, username)
    assert token is not None, username
    return {"Authorization": f"Bearer {token}"}


def _refused_within(base: str, token: str, timeout: float) -> bool:
    """The erased person's access token is refused, once the server asks their standing again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/api/v1/users/me/", headers={"Authorization": f"Bearer {token}"})
        if answer.status_code == 401:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("line", ["not json at all", '{"format": "ugc-erasure/1", "user": 1, "username": "x"}'])
def test_a_journal_line_not_signed_with_the_audit_key_is_named_and_not_carried_out(
    backend: str, tmp_path: Path, line: str
) -> None:
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = deployment(backend, url, tmp_path, tmp_path / "audit")
        (tmp_path / "audit").mkdir()
        (tmp_path / "audit" / "erasures.jsonl").write_text(line + "\n")
        done = run_ugc(env, "users", "erase", "--replay")
        assert done.returncode == 1
        assert "erasures.jsonl line 1" in done.stderr and "not carried out" in done.stderr, done.stderr
        assert "0 journaled erasure(s), 0 carried out again" in done.stdout
