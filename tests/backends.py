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
# Every DROP DATABASE makes PostgreSQL (15) take a checkpoint: all the server's dirty pages written
# out, and each page's next change logged whole (full_page_writes) in every test database. Dropped
# one by one, the suite's few hundred databases took as many checkpoints; dropped DROP_BATCH at a
# time, one after the other, the first drop of a batch takes the checkpoint and the rest find
# little to write. A worker keeps at most that many unused databases (~10 MB each).
DROP_BATCH = 20
_unused: list[str] = []


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
    with _new_postgres_database(migrated_template() if migrated else None) as url:
        yield url


@contextmanager
def copy_of_database(url: str) -> Iterator[str]:
    """Yield the URL of a new PostgreSQL database made as a copy of the one at `url`, to which nobody may
    be connected (CREATE DATABASE ... TEMPLATE); dropped afterwards as `fresh_database`'s are."""
    with _new_postgres_database(urlsplit(url).path.lstrip("/")) as copy:
        yield copy


@contextmanager
def _new_postgres_database(template: str | None) -> Iterator[str]:
    """A new PostgreSQL database, empty or a copy of `template`, dropped in the background afterwards."""
    name = f"ugc_test_{uuid.uuid4().hex[:12]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copied}')
    try:
        yield postgres_url(name)
    finally:
        _drop_later(name)


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_later(name: str) -> None:
    """Hand `name` to the background to be dropped with the next DROP_BATCH - 1 (see DROP_BATCH)."""
    _unused.append(name)
    if len(_unused) >= DROP_BATCH:
        _drop_unused()


def _drop_unused() -> None:
    batch = _unused[:]
    _unused.clear()
    if batch:
        _pending.append(_drops.submit(_drop_all, batch))


def _drop_all(names: list[str]) -> None:
    """Drop each of `names`, even past one that fails; then raise the first failure."""
    failures: list[Exception] = []
    for name in names:
        try:
            drop_database(name)
        except Exception as failure:
            failures.append(failure)
    if failures:
        raise failures[0]


def finish_drops() -> None:
    """Drop the databases not dropped yet and wait for them all (raises a drop's error)."""
    _drop_unused()
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
