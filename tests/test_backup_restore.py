"""The README's "Backups and restores", done as an operator would, with real `ugc` processes (both backends).

A deployment with orders and users is backed up with `ugc backup` while a server takes orders, a
person is erased after the backup and a checkpoint signed, and `ugc restore` puts the backup into a
new database: it moves the newer checkpoint aside, erases the person again from the journal and
verifies clean, and the restored deployment serves exactly the orders the backup's manifest holds.
A backup that is damaged, a destination that exists and a target that holds data are refused; no
server starts on a target while its restore runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.backends import DATA_KEY, drop_database, environment, fresh_database, postgres_available, postgres_url
from tests.servers import free_port, run_ugc, server_environment, start_server
from ugc.accounts import User
from ugc.ids import aggregate_id
from ugc.platform.backup_manifest import write_manifest
from ugc.platform.database import Database
from ugc.platform.pg_tools import holds_data
from ugc.platform.store import EventStores

PERSON = "petr_shop"  # a client of the demo world, with orders
BUYER = "olga_brand"  # the other client: she places orders while the backup is taken
PASSWORD = "demo-password-1"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64
AUDIT_KEY = "test-audit-key-that-is-long-enough-1357924680"


def ugc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run_ugc(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@contextmanager
def new_target(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a database nobody made yet (`ugc restore` makes it); dropped afterwards."""
    directory.mkdir()
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'ugc.sqlite3'}"
        return
    name = f"ugc_test_restored_{uuid.uuid4().hex[:12]}"
    try:
        yield postgres_url(name)
    finally:
        drop_database(name)


def deployment(backend: str, url: str, var_dir: Path, audit_dir: Path) -> dict[str, str]:
    """One deployment's environment; the audit directory (checkpoints, erasure journal) is the one kept
    outside the database, shared by the deployment and its restore as the README says. Small pools:
    several processes of it run at once on a shared PostgreSQL."""
    return environment(backend, url, var_dir) | {
        "UGC_AUDIT_KEY": AUDIT_KEY,
        "UGC_AUDIT_DIR": str(audit_dir),
        "UGC_DB_POOL_MAX": "2",
        "UGC_DB_ASYNC_POOL_MAX": "2",
    }


def verified(env: dict[str, str]) -> dict[str, Any]:
    done = run_ugc(env, "verify", "--json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if report["ok"] else 1), done.stderr
    return report


class OrderTaker(threading.Thread):
    """The buyer placing orders one after another until stopped: writes under way during a backup."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.headers = _headers(base, BUYER)
        services = httpx.get(f"{base}/api/v1/services/", headers=self.headers).json()["results"]
        self.service = services[0]["id"]
        self.placed: list[int] = []
        self.stopping = threading.Event()
        self.failure: str | None = None

    def run(self) -> None:
        body = {"service_id": self.service, "requirements": "Обзор", "selected_option_ids": []}
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            while not self.stopping.is_set():
                answer = client.post("/api/v1/orders/", json=body | {"delivery_date": _in_ten_days()})
                if answer.status_code != 201:
                    self.failure = f"{answer.status_code} {answer.text[:200]}"
                    return
                self.placed.append(int(answer.json()["id"]))

    def stop(self) -> list[int]:
        self.stopping.set()
        self.join(60)
        assert self.failure is None, self.failure
        return self.placed


def _in_ten_days() -> str:
    return (date.today() + timedelta(days=10)).isoformat()


def test_a_backup_taken_under_writes_restores_to_its_manifest_with_later_erasures_carried_out(
    backend: str, tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    (tmp_path / "live").mkdir()
    with fresh_database(backend, tmp_path / "live") as live_url:
        live = deployment(backend, live_url, tmp_path / "live", audit)
        ugc(live, "seed", "--demo")
        with start_server(live) as server:  # backed up, and the person erased, while it serves
            ugc(live, "audit", "checkpoint")
            upload = httpx.post(
                f"{server.url}/api/v1/files/upload/",
                headers=_headers(server.url, BUYER),
                files={"file": ("brief.png", PNG, "image/png")},
            )
            assert upload.status_code == 201, upload.text
            taker = OrderTaker(server.url)
            taker.start()
            while len(taker.placed) < 3 and taker.is_alive():
                time.sleep(0.05)
            backup = ugc(live, "backup", str(tmp_path / "backup"))
            placed = taker.stop()
            assert len(placed) > 3, placed
            ugc(live, "users", "erase", PERSON, "--yes")
            after = Path(ugc(live, "audit", "checkpoint").stdout.split(": ", 1)[1].strip())
        manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
        assert f"orders {manifest['heads']['orders']['position']}" in backup.stdout, backup.stdout
        in_backup = _orders_up_to(live_url, manifest["heads"]["orders"]["position"], placed)
        assert 0 < len(in_backup), (placed, manifest["heads"])

    with new_target(backend, tmp_path / "restored") as url:
        env = deployment(backend, url, tmp_path / "restored", audit)
        done = run_ugc(env, "restore", str(tmp_path / "backup"), "--yes", timeout=240)
        assert done.returncode == 0, (done.stdout, done.stderr)
        # The checkpoint signed after the backup began is moved aside, not deleted: the restore gives
        # up the events after the backup, and says so.
        aside = audit / f"restored-{_stamp(manifest['started_at'])}"
        assert (aside / after.name).exists() and not (audit / after.name).exists()
        assert f"1 checkpoint(s) moved to {aside}" in done.stdout, done.stdout
        assert "1 journaled erasure(s), 1 carried out again" in done.stdout, done.stdout
        assert ": 0 finding(s)" in done.stdout, done.stdout

        # The logs are the backup's up to its heads: each restored chain has the manifest's link there.
        stores = EventStores(url, data_key=DATA_KEY)
        try:
            for context, head in manifest["heads"].items():
                if head["position"]:
                    [row] = stores.chained(context).chain_rows(head["position"], head["position"], 1)
                    assert row.link.hex() == head["link"], context
        finally:
            stores.close()
        with start_server(env) as server:
            served = _all_orders(server.url, _headers(server.url, BUYER))
            download = httpx.get(
                f"{server.url}/api/v1/files/{upload.json()['id']}/download/", headers=_headers(server.url, BUYER)
            )
            assert (download.status_code, download.content) == (200, PNG)  # the media came back too
            assert _signed_in(server.url) is None  # the person erased after the backup stays erased
        assert sorted(served & set(placed)) == in_backup
        _read_as_erased(url, done.stdout)
        users = ugc(env, "users", "list").stdout
        listed = next(line for line in users.splitlines() if f" {PERSON} " in line)
        assert "@" not in listed, listed  # the read row's e-mail is blank
        again = ugc(env, "users", "erase", "--replay")  # nothing left to do, and it says so
        assert "1 journaled erasure(s), 0 carried out again" in again.stdout
        assert verified(env)["ok"]


def _orders_up_to(url: str, position: int, placed: list[int]) -> list[int]:
    """The orders of `placed` whose placing is at or below `position` of the orders log."""
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        streams = {event.stream for event in stores.recorded_range("orders", 1, position, limit=position)}
    finally:
        stores.close()
    return sorted(order for order in placed if aggregate_id("order", order) in streams)


def _all_orders(base: str, headers: dict[str, str]) -> set[int]:
    found: set[int] = set()
    page: str | None = f"{base}/api/v1/orders/?page_size=100"
    while page:
        answer = httpx.get(page, headers=headers)
        assert answer.status_code == 200, answer.text
        found |= {int(order["id"]) for order in answer.json()["results"]}
        page = answer.json()["next"]
    return found


def _stamp(iso: str) -> str:
    """An ISO time of the manifest as checkpoint names write it."""
    return iso.replace("-", "").replace(":", "").replace(".", "")


def test_refusals_come_before_anything_is_written(backend: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with fresh_database(backend, tmp_path, migrated=True) as live_url:
        live = deployment(backend, live_url, tmp_path, audit)
        ugc(live, "seed")
        ugc(live, "backup", str(tmp_path / "backup"))
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "notes.txt").write_text("mine")
        refused = run_ugc(live, "backup", str(tmp_path / "taken"))
        assert refused.returncode == 2 and "exists and is not an empty directory" in refused.stderr, refused.stderr
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-made backup
        # Under a file: not "[Errno 17] File exists" (exit 1), which named the file but not what was wrong.
        refused = run_ugc(live, "backup", str(tmp_path / "taken" / "notes.txt" / "backup"))
        assert (refused.returncode, refused.stderr.strip()) == (
            2,
            f"ugc: backup: {tmp_path / 'taken' / 'notes.txt'} is no directory: give DEST where directories can be made",
        )

        if backend == "postgres":  # PostgreSQL's client tools not installed: said so, nothing left behind
            refused = run_ugc(live | {"PATH": str(tmp_path / "no-tools")}, "backup", str(tmp_path / "untooled"))
            assert refused.returncode == 2 and "pg_dump is not installed" in refused.stderr, refused.stderr
            assert not list(tmp_path.glob("*untooled*"))
        refused = run_ugc(live, "backup", str(audit / "inside"))
        assert refused.returncode == 2 and "which the backup copies" in refused.stderr, refused.stderr

        # A target holding data: the live deployment's own database; --replace moves SQLite's aside.
        refused = run_ugc(live, "restore", str(tmp_path / "backup"), "--yes")
        expected = "is not empty: name a new database" if backend == "postgres" else "ugc.sqlite3 exists"
        assert refused.returncode == 2 and expected in refused.stderr, refused.stderr
        if backend == "sqlite":  # not from under a deployment that is up, an API-only server's included
            for projections in ("inline", "external"):
                with start_server(live | {"UGC_PROJECTIONS": projections}):
                    refused = run_ugc(live, "restore", str(tmp_path / "backup"), "--yes", "--replace")
                assert refused.returncode == 2 and "stop the deployment first" in refused.stderr, (
                    projections,
                    refused.stderr,
                )
        replaced = run_ugc(live, "restore", str(tmp_path / "backup"), "--yes", "--replace")
        if backend == "postgres":
            assert replaced.returncode == 2 and "--replace is for SQLite" in replaced.stderr, replaced.stderr
            with fresh_database(backend, tmp_path) as empty:  # an empty database made by its owner will do
                restored = run_ugc(
                    deployment(backend, empty, tmp_path, audit), "restore", str(tmp_path / "backup"), "--yes"
                )
                assert restored.returncode == 0, (restored.stdout, restored.stderr)
                assert "into the empty database" in restored.stdout, restored.stdout
        else:
            assert replaced.returncode == 0, (replaced.stdout, replaced.stderr)
            [aside] = tmp_path.glob("replaced-*")
            assert len(list(aside.glob("ugc*.sqlite3"))) == 6

        with new_target(backend, tmp_path / "restored") as url:
            env = deployment(backend, url, tmp_path / "restored", audit)
            refused = run_ugc(env, "restore", str(tmp_path / "backup"))  # no terminal, no --yes
            assert refused.returncode == 2 and "not confirmed; nothing was restored" in refused.stderr

            damaged = tmp_path / "backup" / "database" / ("ugc.dump" if backend == "postgres" else "ugc.orders.sqlite3")
            with damaged.open("r+b") as file:  # one byte changed, the size kept
                file.seek(100)
                byte = file.read(1)
                file.seek(100)
                file.write(bytes([byte[0] ^ 0xFF]))
            refused = run_ugc(env, "restore", str(tmp_path / "backup"), "--yes")
            assert refused.returncode == 2, refused.stderr
            assert f"is damaged: database/{damaged.name} differs from the file backed up" in refused.stderr
            assert holds_data(url) is None if backend == "postgres" else not list(url_dir(url).glob("*.sqlite3"))


def url_dir(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///")).parent


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


@pytest.mark.parametrize("made", ["nothing", "a file"])
def test_a_replay_without_the_journals_directory_says_so_and_fails(backend: str, tmp_path: Path, made: str) -> None:
    """A mistyped UGC_AUDIT_DIR read as an empty journal: "0 journaled erasure(s)", exit 0, and the
    people a restore brought back stayed unerased."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = deployment(backend, url, tmp_path, tmp_path / "audit")
        if made == "a file":
            (tmp_path / "audit").write_text("")
        done = run_ugc(env, "users", "erase", "--replay")
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr.strip().splitlines() == [
            f"ugc: users erase --replay: UGC_AUDIT_DIR {tmp_path / 'audit'} is no directory: the erasure journal "
            "is kept there; nothing carried out"
        ]


def test_a_backup_without_the_media_its_database_counts_is_refused(backend: str, tmp_path: Path) -> None:
    """A mistyped UGC_MEDIA_DIR (or one not mounted where the backup runs) made a whole-looking backup
    without a single upload: its restore would serve none of the files its database lists."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = deployment(backend, url, tmp_path, tmp_path / "audit") | {"UGC_MEDIA_DIR": str(tmp_path / "media")}
        with closing(Database(url)) as db, db.transaction(write=True) as cur:  # what uploads leave counted
            cur.execute("INSERT INTO stored_bytes (user_id, bytes) VALUES (1, 4096)")
        refused = run_ugc(env, "backup", str(tmp_path / "backup"))
        assert refused.returncode == 2 and refused.stdout == "", refused
        assert refused.stderr.strip().splitlines() == [
            f"ugc: backup: UGC_MEDIA_DIR {tmp_path / 'media'} is no directory, but the database counts 4,096 bytes "
            "of uploads kept there: give the deployment's media directory"
        ]
        assert not (tmp_path / "backup").exists()
        (tmp_path / "media").mkdir()
        assert run_ugc(env, "backup", str(tmp_path / "backup")).returncode == 0


@contextmanager
def restore_stopped_after_its_database(env: dict[str, str], source: Path) -> Iterator[subprocess.Popen[str]]:
    """`ugc restore SOURCE --yes` frozen (SIGSTOP) right after its database step, as a restore is
    between its steps: the target holds the backup's database, not yet acknowledged. Killed if the
    block does not see it to its end."""
    restoring = subprocess.Popen(
        [sys.executable, "-m", "ugc.cli", "restore", str(source), "--yes"],
        env=server_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert restoring.stdout is not None
        said = ""
        while "database restored" not in said:
            line = restoring.stdout.readline()
            assert line, said  # it ended before restoring the database
            said += line
        os.kill(restoring.pid, signal.SIGSTOP)
        yield restoring
    finally:
        if restoring.poll() is None:
            restoring.kill()
        restoring.communicate(timeout=30)


def backed_up(backend: str, tmp_path: Path, audit: Path, *names: str) -> list[Path]:
    """Backups of a small deployment (the reference data and PERSON), one into each of `names` in
    `tmp_path`, one after the other; then PERSON erased and a checkpoint signed: after them all."""
    (tmp_path / "live").mkdir()
    with fresh_database(backend, tmp_path / "live", migrated=True) as live_url:
        live = deployment(backend, live_url, tmp_path / "live", audit)
        ugc(live, "seed")
        run = run_ugc(live, "users", "create", PERSON, "--email", "petr@example.com", "--verified", stdin=PASSWORD)
        assert run.returncode == 0, run.stderr
        for name in names:
            ugc(live, "backup", str(tmp_path / name))
        ugc(live, "users", "erase", PERSON, "--yes")
        ugc(live, "audit", "checkpoint")
    return [tmp_path / name for name in names]


@pytest.fixture(scope="module")
def made(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`backed_up`'s "backup" and "other" of one backend and its audit directory, made once for the
    module (a deployment seeded, two backups, an erasure and a checkpoint: a dozen `ugc` runs)."""
    where = tmp_path_factory.mktemp(f"made-{backend}")
    backed_up(backend, where, where / "audit", "backup", "other")
    return where


def copied(made: Path, tmp_path: Path, *names: str) -> tuple[Path, list[Path]]:
    """A test's own copy of the audit directory and of the backups `names` of `made`, which a restore
    changes (checkpoints moved aside) or a test may damage."""
    shutil.copytree(made / "audit", tmp_path / "audit")
    for name in names:
        shutil.copytree(made / name, tmp_path / name)
    return tmp_path / "audit", [tmp_path / name for name in names]


def test_no_server_starts_on_a_target_while_its_restore_runs(backend: str, made: Path, tmp_path: Path) -> None:
    audit, [backup] = copied(made, tmp_path, "backup")
    with new_target(backend, tmp_path / "restored") as url:
        env = deployment(backend, url, tmp_path / "restored", audit)
        with restore_stopped_after_its_database(env, backup) as restoring:
            # Each would serve (and append to) a restore not acknowledged yet, or migrate under it.
            for command in (["serve", "--port", str(free_port())], ["project"], ["migrate"]):
                refused = run_ugc(env | {"UGC_PROJECTIONS": "external"}, *command, timeout=60)
                assert refused.returncode == 2, (command, refused.stderr)
                assert "a restore is under way on" in refused.stderr, (command, refused.stderr)
            os.kill(restoring.pid, signal.SIGCONT)
            said, _ = restoring.communicate(timeout=240)
            assert restoring.returncode == 0, said
        assert ": 0 finding(s)" in said, said
        with start_server(env):  # once it is done, the server starts
            pass


def test_a_restore_stopped_after_its_database_is_finished_by_the_same_backup_and_no_other(
    backend: str, made: Path, tmp_path: Path
) -> None:
    audit, (backup, other) = copied(made, tmp_path, "backup", "other")
    given_up = sorted(audit.glob("checkpoint-*.json"))[-1]  # signed after both backups
    with new_target(backend, tmp_path / "restored") as url:
        env = deployment(backend, url, tmp_path / "restored", audit)
        with restore_stopped_after_its_database(env, backup) as restoring:
            restoring.kill()  # a power cut between its steps
            restoring.wait(30)
        _await_no_session(url)

        # Served now, or written to by a command, the restored log would take positions the given-up
        # checkpoint signs (a checkpoint would sign a head not acknowledged, a replay erase too early).
        writing = (
            ["users", "erase", "--replay"],
            ["audit", "checkpoint"],
            ["rebuild"],
            ["projections", "skip", "orders", "1"],
        )
        for command in (["migrate"], ["serve", "--port", str(free_port())], *writing):
            refused = run_ugc(env, *command, timeout=60)
            assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
            assert f"did not finish: `ugc restore {backup}` finishes it" in refused.stderr, refused.stderr
        looked = run_ugc(env, "users", "list")  # reading is not refused
        assert looked.returncode == 0 and "did not finish" not in looked.stderr, looked.stderr
        refused = run_ugc(env, "backup", str(tmp_path / "half"))  # half a deployment is no backup
        assert refused.returncode == 2 and "did not finish" in refused.stderr, refused.stderr
        refused = run_ugc(env, "restore", str(other), "--yes")  # another backup: refused, nothing touched
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        assert "holds the unfinished restore of another backup" in refused.stderr, refused.stderr

        done = run_ugc(env, "restore", str(backup), "--yes", timeout=240)  # the same one finishes it
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "finishing the unfinished restore of this backup" in done.stdout, done.stdout
        assert "log positions and public ids drawn from" in done.stdout, done.stdout  # before it appends
        assert ": 0 finding(s)" in done.stdout, done.stdout
        [aside] = audit.glob("restored-*")  # acknowledged once, whichever run did it
        assert [path.name for path in aside.iterdir()] == [given_up.name] and not given_up.exists()
        again = ugc(env, "users", "erase", "--replay")  # the erasure after the backup is carried out
        assert "1 journaled erasure(s), 0 carried out again" in again.stdout, again.stdout
        refused = run_ugc(env, "restore", str(backup), "--yes")  # finished: a target like any other
        assert refused.returncode == 2 and ("not empty" in refused.stderr or "exists" in refused.stderr), refused.stderr
        with start_server(env):
            assert verified(env)["ok"]


def test_another_backups_unfinished_restore_is_moved_aside_by_replace_on_sqlite(
    backend: str, made: Path, tmp_path: Path
) -> None:
    """`--replace` says what is in the way may go: the half-restored files of another backup too (they
    are moved aside, never deleted). Refused before, whatever the flag said."""
    if backend != "sqlite":
        pytest.skip("--replace is for SQLite: on PostgreSQL a backup is restored into a new database")
    audit, (backup, other) = copied(made, tmp_path, "backup", "other")
    with new_target(backend, tmp_path / "restored") as url:
        env = deployment(backend, url, tmp_path / "restored", audit)
        with restore_stopped_after_its_database(env, backup) as restoring:
            restoring.kill()
            restoring.wait(30)
        refused = run_ugc(env, "restore", str(other), "--yes")
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        assert "or pass --replace to move its files aside and restore this one" in refused.stderr, refused.stderr

        done = run_ugc(env, "restore", str(other), "--yes", "--replace", timeout=240)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "finishing" not in done.stdout and "file(s) that were there moved to" in done.stdout, done.stdout
        assert ": 0 finding(s)" in done.stdout, done.stdout
        [aside] = (tmp_path / "restored").glob("replaced-*")
        assert (aside / "ugc.sqlite3").is_file()  # the first restore's database, kept
        with start_server(env):
            assert verified(env)["ok"]


def test_a_restore_whose_database_step_failed_is_finished_once_the_cause_is_gone(
    backend: str, made: Path, tmp_path: Path
) -> None:
    """A real failure of the database step, as a full disk's: what it leaves is recorded, not taken for
    a restored database. In the way: on SQLite a directory where a file's copy goes; on PostgreSQL a
    domain named as a type of the dump, which is not a table, so the database counts as empty."""
    audit, [backup] = copied(made, tmp_path, "backup")
    with new_target(backend, tmp_path / "restored") as url:
        env = deployment(backend, url, tmp_path / "restored", audit)
        if backend == "postgres":
            with psycopg.connect(postgres_url("postgres"), autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{urlsplit(url).path.lstrip("/")}"')
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE DOMAIN stored_event_uuid AS integer")
        else:
            (tmp_path / "restored" / ".ugc.orders.sqlite3.restoring").mkdir()
        failed = run_ugc(env, "restore", str(backup), "--yes")
        assert failed.returncode == 1 and "ugc: restore failed:" in failed.stderr, (failed.stdout, failed.stderr)
        refused = run_ugc(env, "migrate")
        assert refused.returncode == 2 and "did not finish" in refused.stderr, refused.stderr

        if backend == "postgres":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP DOMAIN stored_event_uuid")
        else:
            (tmp_path / "restored" / ".ugc.orders.sqlite3.restoring").rmdir()
        refused = run_ugc(env, "restore", str(backup))  # no terminal, no --yes: not what the first run did
        assert refused.returncode == 2 and "not confirmed; nothing more was done" in refused.stderr, refused.stderr
        done = run_ugc(env, "restore", str(backup), "--yes", timeout=240)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "finishing the unfinished restore" in done.stdout and "database restored" in done.stdout, done.stdout
        assert ": 0 finding(s)" in done.stdout, done.stdout
        assert f" {PERSON} " in ugc(env, "users", "list").stdout


def _await_no_session(url: str) -> None:
    """PostgreSQL: wait until the database has no session left of the restore killed (its locks go with them)."""
    if not url.startswith("postgresql"):
        return
    name = urlsplit(url).path.lstrip("/")
    deadline = time.monotonic() + 30
    with psycopg.connect(postgres_url("postgres"), autocommit=True) as admin:
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the killed restore's sessions are still there"
            time.sleep(0.1)


@pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_a_restore_without_a_pg_restore_able_to_read_the_dump_is_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    """The tools really installed, asked for their version: none on the PATH, or one older than the
    `pg_dump` a backup names (a backup re-signed with the audit key, as a newer `pg_dump`'s would be)."""
    [backup] = backed_up("postgres", tmp_path, tmp_path / "audit", "backup")
    newer = tmp_path / "newer"
    shutil.copytree(backup, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").unlink()
    del manifest["signature"], manifest["format"]
    write_manifest(newer, AUDIT_KEY, manifest | {"pg_dump_major": 99})
    installed = int(run_tool_version("pg_restore"))
    with new_target("postgres", tmp_path / "restored") as url:
        env = deployment("postgres", url, tmp_path / "restored", tmp_path / "audit")
        refused = run_ugc(env | {"PATH": str(tmp_path / "no-tools")}, "restore", str(backup), "--yes")
        assert refused.returncode == 2 and "pg_restore is not installed" in refused.stderr, refused.stderr
        refused = run_ugc(env, "restore", str(newer), "--yes")
        assert refused.returncode == 2, refused.stderr
        assert f"pg_restore is of PostgreSQL {installed}, older than 99" in refused.stderr, refused.stderr
        assert holds_data(url) is None  # no database made


def run_tool_version(name: str) -> str:
    """The major version `name --version` reports (`pg_restore (PostgreSQL) 15.20 (Debian ...)`)."""
    shown = subprocess.run([name, "--version"], capture_output=True, text=True, check=True).stdout
    return shown.split(")", 1)[1].split()[0].split(".")[0]


class Chat:
    """Anna writing to Boris on one server: each message tells him (a `new_message` notification)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.anna, self.boris = _headers(base, "anna_chat"), _headers(base, "boris_chat")
        boris = httpx.get(f"{base}/api/v1/users/me/", headers=self.boris).json()["id"]
        started = httpx.post(f"{base}/api/v1/conversations/", headers=self.anna, json={"recipient_id": boris})
        assert started.status_code in (200, 201), started.text
        self.conversation = int(started.json()["id"])

    def send(self, text: str) -> int:
        sent = httpx.post(
            f"{self.base}/api/v1/conversations/{self.conversation}/messages/", headers=self.anna, json={"message": text}
        )
        assert sent.status_code == 201, sent.text
        return int(sent.json()["id"])

    def notifications(self) -> list[int]:
        """Boris's notification ids, oldest first."""
        found = httpx.get(f"{self.base}/api/v1/notifications/?page_size=100", headers=self.boris).json()["results"]
        return [int(n["id"]) for n in reversed(found)]

    def replayed(self, path: str) -> tuple[list[int], int | None]:
        """What a socket of Boris's on `path` (with its `since=`) replays, ids in order, and its close
        code if the server closed it (None: open, nothing more to send)."""
        token = self.boris["Authorization"].removeprefix("Bearer ")
        url = f"ws://{urlsplit(self.base).netloc}{path}{'&' if '?' in path else '?'}token={token}"

        async def read() -> tuple[list[int], int | None]:
            ids: list[int] = []
            async with connect(url) as ws:
                try:
                    while True:
                        ids.append(int(json.loads(await asyncio.wait_for(ws.recv(), 2.0))["id"]))
                except TimeoutError:
                    return ids, None
                except ConnectionClosed as closed:
                    return ids, closed.rcvd.code if closed.rcvd else None

        return asyncio.run(read())


def create_user(env: dict[str, str], name: str) -> None:
    created = run_ugc(env, "users", "create", name, "--email", f"{name}@example.com", "--verified", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr


def test_after_a_restore_no_id_a_client_was_given_is_drawn_again(backend: str, tmp_path: Path) -> None:
    """Notification ids and messages' places are log positions, message and user ids come from
    sequences: the restore put them back to the backup's, so the messages after it took the ids of
    those it gave up, and a socket resuming with a `since=` given out before the restore skipped the
    new notifications up to the one that took that id (and an access token of a user registered after
    the backup opened the account of the next one registered after the restore). Now every position
    and id drawn after the restore is past them."""
    audit = tmp_path / "audit"
    (tmp_path / "live").mkdir()
    with fresh_database(backend, tmp_path / "live", migrated=True) as live_url:
        live = deployment(backend, live_url, tmp_path / "live", audit)
        ugc(live, "seed")
        for name in ("anna_chat", "boris_chat"):
            create_user(live, name)
        with start_server(live) as server:
            chat = Chat(server.url)
            kept = chat.send("до копии")
            ugc(live, "backup", str(tmp_path / "backup"))
            given_up = [chat.send("после копии"), chat.send("и еще")]
            told = chat.notifications()  # what Boris's client was given, the last one its `since=`
            assert len(told) == 3, told
            create_user(live, "carl_later")
            carl = _headers(server.url, "carl_later")
        ugc(live, "audit", "checkpoint")

    with new_target(backend, tmp_path / "restored") as url:
        env = deployment(backend, url, tmp_path / "restored", audit)
        done = run_ugc(env, "restore", str(tmp_path / "backup"), "--yes", timeout=240)
        assert done.returncode == 0, (done.stdout, done.stderr)
        with start_server(env) as server:
            chat = Chat(server.url)
            new = [chat.send("после восстановления"), chat.send("и снова")]
            now = chat.notifications()
            assert now[:1] == told[:1] and len(now) == 3, (now, told)  # the one kept, the two new
            # Resumed with the last id it was given, the client is told that id is gone (4404: it reads
            # the list, and misses nothing). It was sent on after the new notification that took the
            # id, and never got the new one before it.
            resumed = chat.replayed(f"/ws/notifications/?since={told[-1]}")
            assert resumed == ([], 4404), (resumed, "new:", now[1:], "given before the restore:", told)
            assert chat.replayed(f"/ws/notifications/?since={told[0]}") == (now[1:], None)  # a kept one's: the rest
            messages = f"/ws/conversations/{chat.conversation}/"
            assert chat.replayed(f"{messages}?since={given_up[-1]}") == ([], 4404)
            assert chat.replayed(f"{messages}?since={kept}") == (new, None)
            assert min(now[1:]) > max(told) and min(new) > max(given_up), (now, told, new, given_up)
            create_user(env, "dora_after")  # registered after the restore: not with Carl's id
            assert httpx.get(f"{server.url}/api/v1/users/me/", headers=carl).status_code == 401
        assert "log positions and public ids drawn from" in done.stdout, done.stdout
        ugc(env, "audit", "checkpoint")  # signs the heads past the gap
        assert verified(env)["ok"]
        # Its progress counts each log's events, not the positions up to its head, the gap's included:
        # each log's last line (a slow one prints more every few seconds) is all of them.
        shown = re.findall(r"verify (\w+): ([\d,]+)/([\d,]+) events", run_ugc(env, "verify").stderr)
        last = {log: (done, total) for log, done, total in shown}
        assert len(last) == 5 and all(done == total for done, total in last.values()), shown
