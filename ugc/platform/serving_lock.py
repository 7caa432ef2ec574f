"""Which processes serve a SQLite database: each holds a shared lock on a file beside it while it runs.

`ugc restore --replace` moves a SQLite database's files aside; a server still running would go on
writing into the files moved (its descriptors follow them). Looking for projection runners in
`lease_members` missed an API-only `ugc serve` (UGC_PROJECTIONS=external), which runs none. So every
server process (each `ugc serve` worker, whatever it runs, and `ugc project`) holds a shared `flock`
on `<database file>.serving` for as long as it runs, and the restore asks for that lock exclusively
without waiting: refused, some server is up. The kernel lets go of a process's lock however the
process ends, so nothing stale is left to expire. A SQLite deployment is one host's (README), which
is what `flock` sees. PostgreSQL needs none of this: a restore there goes into a new database.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ugc.config import is_postgres, sqlite_path


def lock_file(database: Path) -> Path:
    return database.with_name(database.name + ".serving")


@contextmanager
def serving(database_url: str) -> Iterator[None]:
    """Hold the database's serving lock, shared with every other server of it, until the block ends."""
    if is_postgres(database_url):
        yield
        return
    path = lock_file(sqlite_path(database_url))
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)  # waits only while a restore checks (an instant)
        yield
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
