"""Rotating UGC_DATA_KEY: `ugc keys rewrap`, with the deployment stopped, re-wraps every person's data
key (and the canary) from UGC_DATA_KEY_PREVIOUS to UGC_DATA_KEY in one transaction.

The real CLI and a real `ugc serve`, on SQLite and PostgreSQL: data sealed under the old key reads
under the new one, an erased person stays erased, a second run changes nothing, an e-mail address
registered before still counts as taken, and a process with the old key refuses in one line.
"""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.backends import environment, fresh_database
from tests.servers import run_ugc, start_server
from ugc.config import sqlite_path

OLD_KEY = "old-data-key-that-is-long-enough-1357924680"
NEW_KEY = "new-data-key-that-is-long-enough-0864297531"
PASSWORD = "correct-horse-battery"


def _ugc(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = run_ugc(env, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _refused(done: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The one line of a command refused with exit status `status`."""
    assert done.returncode == status and done.stdout == "", done
    [line] = done.stderr.strip().splitlines()
    return line


def _row(listing: str, username: str) -> str:
    return next(line for line in listing.splitlines() if f" {username} " in line)


@pytest.mark.timeout(240)
def test_rewrapped_data_keys_open_with_the_new_key_only(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        base = environment(backend, url, tmp_path)
        old = base | {"UGC_DATA_KEY": OLD_KEY}
        new = base | {"UGC_DATA_KEY": NEW_KEY}
        rotating = new | {"UGC_DATA_KEY_PREVIOUS": OLD_KEY}
        _ugc(old, "migrate")
        _ugc(old, "users", "create", "anna", "--email", "anna@example.com", "--first-name", "Анна", stdin=PASSWORD)
        _ugc(old, "users", "create", "boris", "--email", "boris@example.com", stdin=PASSWORD)
        _ugc(old, "users", "erase", "boris", "--yes")

        with start_server(old, log_dir=tmp_path):
            assert "stop the deployment first" in _refused(run_ugc(rotating, "keys", "rewrap"))
        assert "UGC_DATA_KEY_PREVIOUS" in _refused(run_ugc(new, "keys", "rewrap"))

        assert "re-wrapped" in _ugc(rotating, "keys", "rewrap")
        assert "nothing to do" in _ugc(rotating, "keys", "rewrap")  # safe to run twice

        listing = _ugc(new, "users", "list")
        assert "anna@example.com" in _row(listing, "anna")
        assert "@" not in _row(listing, "boris")  # the destroyed key stays destroyed
        assert "do not open with this UGC_DATA_KEY" in _refused(run_ugc(old, "users", "list"))
        strangers = base | {"UGC_DATA_KEY": "a-third-key-that-is-long-enough-2468013579"}
        assert "opens" in _refused(run_ugc(strangers | {"UGC_DATA_KEY_PREVIOUS": OLD_KEY}, "keys", "rewrap"))

        with start_server(new, log_dir=tmp_path) as server, httpx.Client(base_url=server.url) as client:
            again = {"username": "anna_again", "email": "anna@example.com", "password": PASSWORD}
            taken = client.post("/api/auth/register/", json=again)
            assert taken.status_code == 409, taken.text  # the address's claim still found under the new key
            signed_in = client.post("/api/auth/token/", json={"username": "anna", "password": PASSWORD})
            assert signed_in.status_code == 200, signed_in.text
        assert _ugc(new, "verify").rstrip().endswith(": 0 finding(s)")


def _keys_table(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run `statement` on the accounts log's table of data keys (`{table}` in it), in the table's order."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement.format(table="accounts_data_keys"), params)
            return cur.fetchall() if cur.description else []
    main = sqlite_path(url)
    with closing(sqlite3.connect(main.with_name(f"{main.stem}.accounts{main.suffix}"))) as lite, lite:
        return lite.execute(statement.format(table="data_keys").replace("%s", "?"), params).fetchall()


@pytest.mark.timeout(240)
def test_a_rewrap_that_meets_a_key_it_cannot_open_halfway_changes_nothing(backend: str, tmp_path: Path) -> None:
    """The keys are re-wrapped in one transaction: one that does not open (the table was changed) after
    others were re-wrapped refuses the whole run, and every key stays wrapped with the previous one."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        old = environment(backend, url, tmp_path) | {"UGC_DATA_KEY": OLD_KEY}
        for name in ("anna", "boris", "vera"):
            _ugc(old, "users", "create", name, "--email", f"{name}@example.com", stdin=PASSWORD)
        rows = _keys_table(url, "SELECT subject, wrapped FROM {table} WHERE wrapped IS NOT NULL")
        (_, first_wrapped), (last, last_wrapped) = rows[1], rows[-1]  # rows[0]: the canary, which a run opens first
        _keys_table(url, "UPDATE {table} SET wrapped = %s WHERE subject = %s", (first_wrapped, last))
        before = _keys_table(url, "SELECT subject, wrapped FROM {table}")
        rotating = old | {"UGC_DATA_KEY": NEW_KEY, "UGC_DATA_KEY_PREVIOUS": OLD_KEY}

        refused = run_ugc(rotating, "keys", "rewrap")
        assert f"the data key of aggregate {last} does not open" in _refused(refused)
        assert "nothing was re-wrapped" in refused.stderr
        assert _keys_table(url, "SELECT subject, wrapped FROM {table}") == before  # those re-wrapped before it too

        _keys_table(url, "UPDATE {table} SET wrapped = %s WHERE subject = %s", (last_wrapped, last))
        assert f"re-wrapped {len(rows) + 1} data keys" in _ugc(rotating, "keys", "rewrap")  # + the blind index's
