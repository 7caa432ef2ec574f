"""The `ugc` command as an operator runs it: real processes on a fresh database of each backend."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.backends import environment, fresh_database
from tests.servers import end_process, server_environment, start_projector
from tests.servers import run_ugc as ugc
from ugc.cli import build_parser
from ugc.cli.serving import without_password
from ugc.platform.database import Database

ORDER_STATUSES = {"pending", "in_progress", "delivered", "completed", "cancelled"}


@pytest.fixture(scope="module")
def env(backend: str, database_url: str, var_dir: Path) -> dict[str, str]:
    return environment(backend, database_url, var_dir)


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def test_every_option_and_command_has_help_text() -> None:
    def walk(parser: argparse.ArgumentParser, where: str) -> Iterator[tuple[str, argparse.Action]]:
        for action in parser._actions:
            yield where, action
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{where} {name}")

    missing = [
        f"{where}: {action.dest}"
        for where, action in walk(build_parser(), "ugc")
        if not action.help and not isinstance(action, argparse._SubParsersAction)  # its choices are checked below
    ]
    assert not missing, missing
    subcommands = [a for _, a in walk(build_parser(), "ugc") if isinstance(a, argparse._SubParsersAction)]
    assert all(choice.help for sub in subcommands for choice in sub._choices_actions)


@pytest.mark.parametrize("group", ["projections", "users", "history", "events", "audit", "keys"])
def test_a_group_without_its_command_names_what_is_missing_as_its_usage_does(group: str) -> None:
    """`ugc projections` alone said "required: projections_command", the parser's own variable."""
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as told:
        build_parser().parse_args([group])
    usage, error = told.getvalue().strip().splitlines()
    metavar = error.rpartition("required: ")[2]
    assert metavar.isupper() and f" {metavar} ..." in usage, (usage, error)


def test_version(env: dict[str, str]) -> None:
    done = ugc(env, "--version")
    assert done.returncode == 0 and done.stdout.startswith("ugc "), done


def test_an_error_is_one_line_and_a_non_zero_exit(env: dict[str, str]) -> None:
    done = ugc(env, "users", "grant", "nobody_here", "admin")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["ugc: no user named 'nobody_here'"]


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--port", "70000", "TCP port"),
        ("--port", "0", "TCP port"),
        ("--workers", "0", "argument --workers: expected a number of server processes from 1 to 256"),
        # 10,000 processes of ~80 MB each: no machine holds them, nor PostgreSQL their connections.
        ("--workers", "10000", "argument --workers: expected a number of server processes from 1 to 256"),
        # Told as `serve failed: UGC_PUBLIC_URL must be ...`, exit status 1: a variable nobody had set.
        ("--host", "not a host", "argument --host: expected an IP address or a host name"),
        ("--host", "[::1]", "argument --host: expected an IP address or a host name"),
        ("--host", "market.example/api", "argument --host: expected an IP address or a host name"),
    ],
)
def test_serve_refuses_a_port_or_worker_count_it_cannot_honour(
    tmp_path: Path, option: str, value: str, expected: str
) -> None:
    done = ugc({"UGC_VAR_DIR": str(tmp_path)}, "serve", option, value)
    assert done.returncode == 2 and expected in done.stderr, done.stderr


def test_serve_refuses_more_workers_than_postgresql_takes_connections(backend: str, env: dict[str, str]) -> None:
    """README's connection budget: a worker holds up to D + A + 4*S + O + 3 connections. 100 workers
    (1,700 with the defaults, against PostgreSQL's 100) started, and failed requests once busy."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's max_connections")
    done = ugc(env, "serve", "--port", "18598", "--workers", "100", timeout=60)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("ugc: serve: --workers 100 needs up to 1700 PostgreSQL connections (17 a worker"), line
    assert "max_connections" in line, line


def test_a_data_key_of_bytes_that_are_no_utf8_is_refused_in_one_line(env: dict[str, str]) -> None:
    """It failed `migrate` with exit status 1 and the codec's words (`can't encode character '\\udcff'`)."""
    done = ugc(env | {"UGC_DATA_KEY": "data-key-\udcff-0123456789"}, "migrate")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ugc: UGC_DATA_KEY must be UTF-8 text: it holds bytes that are no UTF-8 (0xff at 9)"
    ], done.stderr


def test_a_connection_string_libpq_cannot_read_is_told_at_once_not_waited_for(
    backend: str, env: dict[str, str]
) -> None:
    """Waiting is for a database that restarts, is full or is being made; a port that is no number
    will not become one: refused with the settings, before any connection."""
    if backend != "postgres":
        pytest.skip("libpq's connection strings")
    unreadable = "postgresql://postgres@127.0.0.1:notaport/db"
    started = time.monotonic()
    done = ugc(env | {"UGC_DATABASE_URL": unreadable}, "migrate")
    assert done.returncode == 2 and time.monotonic() - started < 20
    assert done.stderr.strip().splitlines() == [
        f"ugc: UGC_DATABASE_URL must be sqlite:///path or postgresql://user:pass@host:5432/db (with its user, host "
        f"and database), not {unreadable!r}"
    ]


def test_output_into_a_pipe_whose_reader_left_is_no_failure(env: dict[str, str]) -> None:
    """`ugc projections status | head -1`: the reader has what it wanted; no "failed" line follows."""
    done = subprocess.run(
        f"{sys.executable} -m ugc.cli projections status | true",
        shell=True,
        env=server_environment(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "failed" not in done.stderr and "Broken pipe" not in done.stderr, done.stderr


def test_projections_status_json_is_json_for_a_lease_never_held(backend: str, tmp_path: Path) -> None:
    """No runner ever held a lease here: how long each has been unheld is unknown, null (not Infinity,
    which no JSON parser but Python's takes)."""

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is no JSON")

    with fresh_database(backend, tmp_path, migrated=True) as url:
        done = ugc(environment(backend, url, tmp_path), "projections", "status", "--json")
    assert done.returncode == 0, done.stderr
    states = json.loads(done.stdout, parse_constant=no_constants)
    assert states and all(s["holder"] is None and s["unheld_for"] is None for s in states), states


def test_serve_on_a_port_taken_says_so_in_one_line(tmp_path: Path) -> None:
    """Another process listens there: one line naming the address, not the banner of a server that
    never serves and then uvicorn's log line `[Errno 98] Address already in use`, exit status 3."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = ugc({"UGC_VAR_DIR": str(tmp_path)}, "serve", "--port", str(port))
    assert (done.returncode, done.stdout) == (1, ""), done
    assert done.stderr.strip().splitlines() == [
        f"ugc: serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_projections_skip_names_the_log_given_that_the_projection_does_not_follow(env: dict[str, str]) -> None:
    """`--log messaging` for `orders` was answered "give --log", as if none had been given."""
    done = ugc(env, "projections", "skip", "orders", "1", "--log", "messaging")
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.strip().splitlines() == ["ugc: orders follows no log 'messaging'; --log is one of: orders"]
    unsaid = ugc(env, "projections", "skip", "notifications", "1")
    assert unsaid.returncode == 2, unsaid
    assert unsaid.stderr.strip().splitlines() == [
        "ugc: notifications follows several logs: give --log, one of: orders, messaging"
    ]


def test_verify_says_an_audit_dir_that_is_a_file_is_no_directory(env: dict[str, str], tmp_path: Path) -> None:
    """It said "does not exist" of a path that does, which sends the operator looking for a typo."""
    audit = tmp_path / "audit-file"
    audit.write_text("not checkpoints")
    done = ugc(env | {"UGC_AUDIT_DIR": str(audit)}, "verify")
    last = done.stdout.strip().splitlines()[-1]
    assert f"no checkpoint: UGC_AUDIT_DIR {audit} is a file, not a directory:" in last, done


def test_production_refuses_to_serve_on_sqlite_in_one_line(tmp_path: Path) -> None:
    env = {"UGC_VAR_DIR": str(tmp_path), "UGC_ENV": "production", "UGC_SECRET_KEY": "9f4c2b7e1a8d3f6c0b5e9a2d7c4f1e8b"}
    done = ugc(env, "serve", "--port", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ugc: UGC_ENV=production needs a PostgreSQL UGC_DATABASE_URL, not SQLite"
    ]


def test_users_create_list_grant_and_revoke(env: dict[str, str]) -> None:
    created = ugc(
        env,
        "users",
        "create",
        "cli_anna",
        "--email",
        "cli_anna@example.com",
        "--verified",
        "--role",
        "auditor",
        stdin="a-long-password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created user cli_anna" in created.stdout
    again = ugc(env, "users", "create", "CLI_Anna", "--email", "other@example.com", stdin="a-long-password\n")
    assert again.returncode == 1 and again.stderr.strip() == "ugc: that username is already taken"
    short = ugc(env, "users", "create", "cli_bob", "--email", "bob@example.com", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    # The rules of registering over the API: a name of its characters and one script, a real e-mail.
    for username, email, field in [
        ("", "e@example.com", "username"),
        ("a b", "ab@example.com", "username"),
        ("x" * 151, "x@example.com", "username"),
        ("cli_mail", "notanemail", "email"),
        ("cli_mail", "", "email"),
    ]:
        refused = ugc(env, "users", "create", username, "--email", email, stdin="a-long-password\n")
        assert refused.returncode == 2 and f"ugc: users create: {field}: " in refused.stderr, refused.stderr
    assert ugc(env, "users", "grant", "cli_anna", "admin").returncode == 0
    assert ugc(env, "users", "revoke", "cli_anna", "auditor").returncode == 0
    again_revoked = ugc(env, "users", "revoke", "cli_anna", "auditor")  # nothing to revoke: says so
    assert (again_revoked.returncode, again_revoked.stdout.strip()) == (0, "cli_anna is not auditor")
    again_granted = ugc(env, "users", "grant", "cli_anna", "admin")
    assert (again_granted.returncode, again_granted.stdout.strip()) == (0, "cli_anna is admin already")
    assert ugc(env, "rebuild", "accounts").returncode == 0  # no server here keeps the users table
    listed = ugc(env, "users", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if "cli_anna" in line)
    assert line.split()[-2:] == ["yes", "admin"], line


def test_a_user_created_verified_gets_no_verification_mail(env: dict[str, str], tmp_path: Path) -> None:
    """The operator vouched for the address: no link to click arrives; a user created without it gets one."""
    for username, vouched in (("cli_vouched", ["--verified"]), ("cli_mailed", [])):
        email = f"{username}@example.com"
        created = ugc(env, "users", "create", username, "--email", email, *vouched, stdin="a-long-password\n")
        assert created.returncode == 0, created.stderr
    projector = start_projector(env | {"UGC_PROJECTIONS": "external"}, tmp_path / "project.log")
    try:
        deadline = time.monotonic() + 60
        while "cli_mailed@example.com" not in (recipients := _mailed(Path(env["UGC_VAR_DIR"]) / "outbox")):
            assert time.monotonic() < deadline, (tmp_path / "project.log").read_text()
            time.sleep(0.1)
    finally:
        end_process(projector)
    assert "cli_vouched@example.com" not in recipients  # mailed in the same batch as cli_mailed, if at all


def _mailed(outbox: Path) -> set[str]:
    return {str(message_from_bytes(path.read_bytes())["To"]) for path in outbox.glob("*.eml")}


def test_the_commands_that_do_not_migrate_say_when_the_database_has_no_tables(backend: str, tmp_path: Path) -> None:
    """An operator pointed at the wrong database (another application's, or a new one): one line
    that says so, not an SQL error, and nothing made there: no schema, no checkpoint of it."""
    with fresh_database(backend, tmp_path) as url:
        _another_applications_table(url)
        empty = environment(backend, url, tmp_path)
        for command in (
            ["verify"],
            ["verify", "--json"],
            ["history", "order", "1"],
            ["events", "check"],
            ["users", "list"],
            ["users", "create", "cli_nobody", "--email", "cli_nobody@example.com"],
            ["users", "grant", "cli_nobody", "admin"],
            ["projections", "status"],
            ["audit", "checkpoint"],
            ["rebuild"],
        ):
            done = ugc(empty, *command, stdin="a-long-password\n")
            assert (done.returncode, done.stdout) == (2, ""), done
            assert done.stderr.strip() == (
                f"ugc: {command[0]}: the database of UGC_DATABASE_URL has no UGC Market tables "
                "(a wrong database, or one not migrated yet: ugc migrate)"
            )
        assert _tables(url) == ["invoices"]
    assert not list(tmp_path.rglob("*.json")), "a checkpoint of nothing was signed"
    typo = tmp_path / "typo"  # a mistyped SQLite path: no directory, no database file made for it
    done = ugc(empty | {"UGC_DATABASE_URL": f"sqlite:///{typo / 'ugc.sqlite3'}"}, "audit", "checkpoint")
    assert done.returncode == 2 and "no UGC Market tables" in done.stderr and not typo.exists(), done


def test_project_refuses_a_name_it_does_not_run_before_it_migrates(backend: str, tmp_path: Path) -> None:
    """`ugc project --only nosuch` is a mistyped argument, told as `rebuild` and `projections retry`
    tell one (exit status 2), before the process makes the schema in the database it points at."""
    with fresh_database(backend, tmp_path) as url:
        _another_applications_table(url)
        done = ugc(
            environment(backend, url, tmp_path) | {"UGC_PUBLIC_URL": "http://127.0.0.1:1"},
            "project",
            "--only",
            "listings",
            "nosuch",
        )
        assert (done.returncode, done.stdout) == (2, ""), done
        assert done.stderr.strip().splitlines() == [
            "ugc: project: no projection named nosuch; known: accounts, catalog, creator_skills, creator_stats, "
            "files, listings, messaging, notifications, orders, portfolio, scheduler, verification_mail"
        ]
        assert _tables(url) == ["invoices"]


def _another_applications_table(url: str) -> None:
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")


def _tables(url: str) -> list[str]:
    if url.startswith("sqlite:///"):
        main = Path(url.removeprefix("sqlite:///"))
        assert [path.name for path in main.parent.glob("ugc*.sqlite3")] == [main.name]  # no event log files
        with contextlib.closing(sqlite3.connect(main)) as conn:
            return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def test_seed_demo_fills_every_order_status_once(env: dict[str, str], db: Database) -> None:
    """Also when two run at once (a deploy whose replicas all seed): one adds it, the other waits and finds it."""
    both = [
        subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "seed", "--demo"],
            env=server_environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [seed.communicate(timeout=300) for seed in both]
    assert [seed.returncode for seed in both] == [0, 0], outputs
    assert sorted("demo data added" in out for out, _ in outputs) == [False, True], outputs
    assert ugc(env, "rebuild").returncode == 0
    before = _counts(db)
    assert set(before["orders"]) == ORDER_STATUSES
    assert before["reviews"] and before["messages"] and before["services"] >= 3
    second = ugc(env, "seed", "--demo")
    assert second.returncode == 0 and "demo data already present" in second.stdout
    assert ugc(env, "rebuild").returncode == 0
    assert _counts(db) == before


def _counts(db: Database) -> dict[str, Any]:
    """The orders by status (a dict), and the rows of each other table (a number)."""
    with db.read() as cur:
        rows = cur.execute("SELECT status, COUNT(*) AS n FROM orders GROUP BY status").fetchall()
        counts: dict[str, Any] = {"orders": {row["status"]: row["n"] for row in rows}}
        for table in ("reviews", "messages", "services", "users"):
            counted = cur.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()  # noqa: S608
            assert counted is not None
            counts[table] = counted["n"]
    return counts


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("smtps://robot:s3cret@[::1]:465", "smtps://robot:***@[::1]:465"),
        ("smtp://robot:s3cret@mail.example.com", "smtp://robot:***@mail.example.com"),
        ("smtp://mail.example.com:25", "smtp://mail.example.com:25"),
    ],
)
def test_the_banner_shows_the_smtp_url_without_its_password(url: str, shown: str) -> None:
    assert without_password(url) == shown
