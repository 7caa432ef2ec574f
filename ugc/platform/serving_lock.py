"""The lock that keeps servers and restores of one database apart: many servers, or one restore.

`ugc restore --replace` moves a SQLite database's files aside; a server still running would go on
writing into the files moved (its descriptors follow them). And a server started while a restore
runs would migrate an empty target under it, or serve (and append to) a database whose restore is
not acknowledged yet. So every server takes the lock shared, and a restore takes it exclusively,
without waiting on either side: whoever comes second is refused, in one line.

SQLite: a `flock` on `<database file>.serving` beside the database, held shared by every server
process for as long as it runs (each `ugc serve` worker, whatever it runs, and `ugc project`: an
API-only server runs no projection, so `lease_members` would miss it) and by every migration; the
kernel lets go of it however the process ends, so nothing stale is left to expire. A SQLite
deployment is one host's (README), which is what `flock` sees. PostgreSQL: an advisory lock in the
target database, held exclusively by the restore on a connection of its own for its whole run and
taken shared by every migration, the first thing every server does; a server does not hold it while
it serves (a connection each): a restore into a database that holds tables is refused anyway.
`ugc keys rewrap` takes the lock as a restore does, and on PostgreSQL also wants no other session on
the database (`alone`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ugc.config import is_postgres, sqlite_path
from ugc.platform.backup_manifest import BackupRefused
from ugc.platform.database import KEEPALIVES, Database
from ugc.platform.restore_record import read_record

LOCK_NAME = "restore"  # PostgreSQL: the advisory lock's name (Database.lock_key)


class RestorePending(Exception):
    """A server refused because a restore of its database is under way or unfinished (exit status 2)."""


def lock_file(database: Path) -> Path:
    return database.with_name(database.name + ".serving")


def _under_way(target: str) -> RestorePending:
    return RestorePending(f"a restore is under way on {target}: start the server once `ugc restore` has finished")


@contextmanager
def serving(database_url: str) -> Iterator[None]:
    """A server's lifetime: SQLite's lock held shared until the block ends; refused while a restore holds it."""
    if is_postgres(database_url):
        yield
        return
    with _flock(sqlite_path(database_url), fcntl.LOCK_SH) as taken:
        if not taken:
            raise _under_way(str(sqlite_path(database_url)))
        yield


@contextmanager
def migrating(database_url: str) -> Iterator[None]:
    """A migration (every server's first step): the lock held shared for the block; refused while a
    restore holds it, or left the database unfinished (`restore_record.py`)."""
    if not is_postgres(database_url):
        with serving(database_url):
            refuse_unfinished(database_url)
            yield
        return
    from ugc.platform.postgres_driver import psycopg

    with psycopg.connect(database_url, autocommit=True, **KEEPALIVES) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (Database.lock_key(LOCK_NAME),)).fetchone()
        if not (row and row[0]):
            raise _under_way(f"the database {conn.info.dbname}")
        refuse_unfinished(database_url)
        yield  # the session's end lets the lock go


def refuse_unfinished(database_url: str) -> None:
    """RestorePending while the database's restore did not finish (`restore_record.py`): served, or
    written to by a command (`ugc users`, `rebuild`, ...), before it is acknowledged, a restored log
    would take the positions the checkpoints given up sign, and `ugc verify` would report it
    rewritten; and its erasures may not be carried out again yet."""
    record = read_record(database_url)
    if record is not None:
        raise RestorePending(
            f"the restore of the backup of {record.started_at} into this database did not finish: "
            f"`{record.finishing_command()}` finishes it"
        )


@contextmanager
def restoring(database_url: str) -> Iterator[None]:
    """A restore's whole run: the lock held exclusively; refused (BackupRefused) while any server or
    migration holds it, or another restore."""
    refused = BackupRefused(
        "a ugc server (serve, project, migrate) or another restore runs on the target: stop it first"
    )
    with _exclusive(database_url, refused, alone=False):
        yield


@contextmanager
def alone(database_url: str, refused: Exception) -> Iterator[None]:
    """The lock held exclusively for the block by a command that must be the only process on the
    database (`ugc keys rewrap`): `refused` raised while a server, a migration or a restore holds it,
    or, on PostgreSQL, where a server does not hold it while it serves, while any other session is
    connected to the database (a server, a projector, another command, psql)."""
    with _exclusive(database_url, refused, alone=True):
        yield


@contextmanager
def _exclusive(database_url: str, refused: Exception, *, alone: bool) -> Iterator[None]:
    if not is_postgres(database_url):
        with _flock(sqlite_path(database_url), fcntl.LOCK_EX) as taken:
            if not taken:
                raise refused
            yield
        return
    from ugc.platform.postgres_driver import psycopg

    with psycopg.connect(database_url, autocommit=True, **KEEPALIVES) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (Database.lock_key(LOCK_NAME),)).fetchone()
        if not (row and row[0]):
            raise refused
        if alone:  # counted once the lock is held: a server starting from now on is refused as it migrates
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
            if others and others[0]:
                raise refused
        yield


@contextmanager
def _flock(database: Path, mode: int) -> Iterator[bool]:
    path = lock_file(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # lets the lock go


def served(database: Path) -> bool:
    """Whether any process holds the serving lock of the SQLite database file `database` now."""
    path = lock_file(database)
    if not path.exists():
        return False
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
