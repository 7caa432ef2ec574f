"""A table of data keys gone from under sealed personal data is named, never made anew (both backends).

The keys table is mutable and no part of the chained log, so it can be dropped, or lost with a file,
while the accounts log still holds fields sealed under its keys. `ugc migrate` (and every server's
start) used to make it anew, empty: the next process laid its canary there, the deployment's key
"opened" it, and every person's read failed while the database looked healthy; `ugc verify` answered
"not migrated yet: ugc migrate", the one advice that hides the loss.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from tests.backends import environment, fresh_database
from tests.servers import run_ugc
from ugc.config import sqlite_path

LOST = "the table of data keys"


@pytest.fixture
def env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    with fresh_database(backend, tmp_path, migrated=True) as url:
        yield environment(backend, url, tmp_path / "var")


def keys_table(url: str, *, drop: bool = False) -> bool:
    """Whether the accounts log's table of data keys is there (dropped first if `drop`)."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            if drop:
                conn.execute("DROP TABLE accounts_data_keys")
            row = conn.execute("SELECT to_regclass('accounts_data_keys') IS NOT NULL").fetchone()
            return bool(row and row[0])
    main = sqlite_path(url)
    with closing(sqlite3.connect(main.with_name(f"{main.stem}.accounts{main.suffix}"))) as lite, lite:
        if drop:
            lite.execute("DROP TABLE data_keys")
        return lite.execute("SELECT 1 FROM sqlite_master WHERE name = 'data_keys'").fetchone() is not None


def test_a_dropped_table_of_data_keys_is_a_finding_of_verify_and_no_command_makes_it_anew(
    env: dict[str, str],
) -> None:
    created = run_ugc(env, "users", "create", "tainova", "--email", "tainova@hidden.example", stdin="s3cret-Passw0rd\n")
    assert created.returncode == 0, created.stderr  # her e-mail is sealed under a key of hers
    assert not keys_table(env["UGC_DATABASE_URL"], drop=True)

    verified = run_ugc(env, "verify", "--json")
    assert verified.returncode == 1, verified.stderr
    [lost] = [f for f in json.loads(verified.stdout)["findings"] if f["kind"] == "data_keys"]
    assert lost["context"] == "accounts" and LOST in lost["what"] and "dropped or lost" in lost["what"]
    assert "chain" not in {f["kind"] for f in json.loads(verified.stdout)["findings"]}  # the log itself is whole
    shown = run_ugc(env, "verify")
    assert shown.returncode == 1 and f"data_keys accounts: {LOST}" in shown.stdout, shown.stdout + shown.stderr

    for command in (("migrate",), ("users", "list"), ("audit", "checkpoint")):
        refused = run_ugc(env, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert f"{LOST} (" in refused.stderr and "Backups and restores" in refused.stderr, refused.stderr
        assert "ugc migrate)" not in refused.stderr  # not the advice for a database never migrated
    assert not keys_table(env["UGC_DATABASE_URL"])  # nothing made it anew


def test_a_log_with_nothing_sealed_gets_its_table_of_data_keys_made_as_before(env: dict[str, str]) -> None:
    """A database from before sealing holds no sealed field: its table is simply not made yet."""
    assert not keys_table(env["UGC_DATABASE_URL"], drop=True)
    migrated = run_ugc(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert keys_table(env["UGC_DATABASE_URL"])
    verified = run_ugc(env, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
