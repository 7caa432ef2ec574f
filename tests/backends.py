"""Test databases: a fresh SQLite file or a fresh PostgreSQL database, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ugc.platform.database import Database
from ugc.wiring import migrate

POSTGRES_URL = os.environ.get("UGC_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("UGC_TEST_REDIS_URL", "")
BACKENDS = ["sqlite", "postgres"]
RUN_VARIABLE = "UGC_TEST_RUN"  # set once per run by tests/conftest.py, inherited by xdist's workers
TEMPLATE_LOCK = 0x75676374  # pg_advisory_lock key: one worker migrates the template, the others wait

# Dropping a database takes PostgreSQL ~0.5 s (more when the machine is busy); the next module need
# not wait for it. `finish_drops` waits for them all at the end of the run.
_drops = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database")
_pending: list[Future[None]] = []
_templates: set[str] = set()  # made (by this process or another) in this run


def postgres_available() -> bool:
    return POSTGRES_URL.startswith("postgresql://")


def postgres_url(name: str) -> str:
    return urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))


@contextmanager
def fresh_database(backend: str, directory: Path, *, migrated: bool = False) -> Iterator[str]:
    """Yield the URL of a database of `backend` that nobody else uses: empty, or with every table
    `ugc migrate` creates (on PostgreSQL a copy of one migrated template per run: copying takes a few
    ms, migrating ~0.5 s)."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'ugc.sqlite3'}"
        if migrated:
            _migrate(url)
        yield url
        return
    name = f"ugc_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{migrated_template()}"' if migrated else ""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield postgres_url(name)
    finally:
        _pending.append(_drops.submit(drop_database, name))


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def finish_drops() -> None:
    """Wait for the databases handed to the background to be dropped (raises a drop's error)."""
    while _pending:
        _pending.pop().result()


def template_name() -> str:
    return f"ugc_test_template_{os.environ[RUN_VARIABLE]}"


def migrated_template() -> str:
    """The run's migrated template database, made by whichever worker asks first."""
    name = template_name()
    if name in _templates:
        return name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", (TEMPLATE_LOCK,))
        try:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                admin.execute(f'CREATE DATABASE "{name}"')
                try:
                    _migrate(postgres_url(name))
                except BaseException:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # never a half-made template
                    raise
                # Nobody may connect to it again: CREATE DATABASE ... TEMPLATE refuses a template in use.
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (TEMPLATE_LOCK,))
    _templates.add(name)
    return name


def _migrate(url: str) -> None:
    db = Database(url)
    try:
        migrate(db)
    finally:
        db.close()


# Every server, CLI run and store of the tests opens personal data with this one key, as the
# processes of one deployment share UGC_DATA_KEY.
DATA_KEY = "test-data-key-that-is-long-enough-9876543210"


def environment(backend: str, database_url: str, var_dir: Path) -> dict[str, str]:
    """The UGC_* variables for a server or runtime under test (cheap argon2, fixed secret)."""
    env = {
        "UGC_DATABASE_URL": database_url,
        "UGC_VAR_DIR": str(var_dir),
        "UGC_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "UGC_DATA_KEY": DATA_KEY,
        # argon2id at its cheapest but for a margin above the least accepted (32 KiB, tests/test_config.py):
        # each hash and check ~0.4 ms, not 3.6 ms at 8 MiB, in the thousands of sign-ups and sign-ins of
        # the suite. A test whose point is the hash's cost sets its own (test_overload, test_throttle_crash).
        "UGC_ARGON2_TIME_COST": "1",
        "UGC_ARGON2_MEMORY_KIB": "256",
    }
    if backend == "postgres" and REDIS_URL:
        env["UGC_REDIS_URL"] = REDIS_URL
    return env
