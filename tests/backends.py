"""Test databases: a fresh SQLite file or a fresh PostgreSQL database, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

POSTGRES_URL = os.environ.get("UGC_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("UGC_TEST_REDIS_URL", "")
BACKENDS = ["sqlite", "postgres"]


def postgres_available() -> bool:
    return POSTGRES_URL.startswith("postgresql://")


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """Yield the URL of an empty database of `backend` that nobody else uses."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'ugc.sqlite3'}"
        return
    name = f"ugc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(POSTGRES_URL)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(backend: str, database_url: str, var_dir: Path) -> dict[str, str]:
    """The UGC_* variables for a server or runtime under test (cheap argon2, fixed secret)."""
    env = {
        "UGC_DATABASE_URL": database_url,
        "UGC_VAR_DIR": str(var_dir),
        "UGC_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "UGC_ARGON2_TIME_COST": "1",
        "UGC_ARGON2_MEMORY_KIB": "8192",
    }
    if backend == "postgres" and REDIS_URL:
        env["UGC_REDIS_URL"] = REDIS_URL
    return env
