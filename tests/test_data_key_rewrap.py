"""Rotating UGC_DATA_KEY: `ugc keys rewrap`, with the deployment stopped, re-wraps every person's data
key (and the canary) from UGC_DATA_KEY_PREVIOUS to UGC_DATA_KEY in one transaction.

The real CLI and a real `ugc serve`, on SQLite and PostgreSQL: data sealed under the old key reads
under the new one, an erased person stays erased, a second run changes nothing, an e-mail address
registered before still counts as taken, and a process with the old key refuses in one line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.backends import environment, fresh_database
from tests.servers import run_ugc, start_server

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
        assert "do not open with this UGC_DATA_KEY" in _refused(run_ugc(old, "users", "list"), 1)
        strangers = base | {"UGC_DATA_KEY": "a-third-key-that-is-long-enough-2468013579"}
        assert "opens" in _refused(run_ugc(strangers | {"UGC_DATA_KEY_PREVIOUS": OLD_KEY}, "keys", "rewrap"))

        with start_server(new, log_dir=tmp_path) as server, httpx.Client(base_url=server.url) as client:
            again = {"username": "anna_again", "email": "anna@example.com", "password": PASSWORD}
            taken = client.post("/api/auth/register/", json=again)
            assert taken.status_code == 409, taken.text  # the address's claim still found under the new key
            signed_in = client.post("/api/auth/token/", json={"username": "anna", "password": PASSWORD})
            assert signed_in.status_code == 200, signed_in.text
        assert _ugc(new, "verify").rstrip().endswith(": 0 finding(s)")
