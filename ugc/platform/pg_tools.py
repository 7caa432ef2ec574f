"""PostgreSQL's client tools (`pg_dump`, `pg_restore`) run on a `UGC_DATABASE_URL`, and the databases
a restore goes into.

A tool older than the server cannot dump it, and `pg_restore` cannot read an archive of a newer
`pg_dump`: both are told in one line before anything runs. The password travels in the tools'
environment, not on their command line, where any user of the host could read it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ugc.platform.backup_manifest import BackupRefused
from ugc.platform.restore_record import TABLE as RECORD_TABLE

MAINTENANCE_DATABASE = "postgres"  # where a database is created from


def tool(name: str, at_least: int) -> tuple[str, int]:
    """The path and major version of client tool `name`, refused when missing or older than `at_least`."""
    path = shutil.which(name)
    if path is None:
        raise BackupRefused(
            f"{name} is not installed: install PostgreSQL's client tools of major version {at_least} or later "
            f"(Debian: postgresql-client-{at_least})"
        )
    shown = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"\)\s*(\d+)", shown)
    major = int(found.group(1)) if found else 0
    if major < at_least:
        raise BackupRefused(
            f"{name} is of PostgreSQL {major or shown.strip()!r}, older than {at_least} (the server's, or the "
            f"backup's): install the client tools of major version {at_least} or later"
        )
    return path, major


def run(command: list[str], database_url: str) -> None:
    """Run a client tool on `database_url` (given as `--dbname`); raise RuntimeError with its last words."""
    target, password = _without_password(database_url)
    done = subprocess.run(
        [*command, f"--dbname={target}"], capture_output=True, text=True, check=False, env=os.environ | password
    )
    if done.returncode != 0:
        words = " ".join(done.stderr.split()[-60:]) or f"exit status {done.returncode}"
        raise RuntimeError(f"{Path(command[0]).name} failed: {words}")


def _without_password(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that gives the password to libpq."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url, {}
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc)), {"PGPASSWORD": unquote(parts.password)}


def database_name(database_url: str) -> str:
    return unquote(urlsplit(database_url).path.lstrip("/")) or MAINTENANCE_DATABASE


def maintenance_url(database_url: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{MAINTENANCE_DATABASE}"))


def holds_data(database_url: str) -> bool | None:
    """Whether the database has any table, view or sequence of its own, an unfinished restore's record
    aside (`restore_record.py`); None when it does not exist."""
    name = database_name(database_url)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return None
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
            "AND c.oid IS DISTINCT FROM to_regclass(%s))",
            (RECORD_TABLE,),
        ).fetchone()
    return bool(row and row[0])


def create_database(database_url: str) -> None:
    name = database_name(database_url)
    try:
        with psycopg.connect(maintenance_url(database_url), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise BackupRefused(
            f"cannot create the database {name!r} ({' '.join(str(error).split())}): create it empty "
            f"(createdb -O <owner> {name}) and restore again"
        ) from None


def drop_database(database_url: str) -> None:
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database_name(database_url))))
