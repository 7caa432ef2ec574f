"""Whether the file system under a SQLite database's files would take a write now: room left, and
neither the file system nor a file read-only.

Readiness took SQLite's write lock and let it go at once, which needs no room and no write: on a full
disk it answered "ok" while every commit failed ("database or disk is full"), until the leases
lapsed. A probe that commits would not tell either: the WAL reuses the frames a checkpoint freed, so
a small commit may well succeed where a batch's fails. The kernel's own counts tell, for the price of
a few system calls: statvfs for the room left and a file system (re)mounted read-only, access(2) for
a file that refuses writers (its mode; immutable, which refuses root too).
"""

from __future__ import annotations

import os
from pathlib import Path

# Bytes free below which the disk counts as full: a batch of 500 events commits a few hundred KB of
# WAL frames, and a checkpoint grows the database file by what the WAL held.
ROOM_NEEDED = 1 << 20


def files_of(database: Path) -> list[Path]:
    """The database's file and its event stores' beside it (`ugc.sqlite3`, `ugc.orders.sqlite3`...)."""
    siblings = database.parent.glob(f"{database.stem}.*{database.suffix or '.sqlite3'}")
    return [database, *sorted(siblings)]


def refusal(database: Path) -> str | None:
    """Why a write to the SQLite database at `database` would fail now ("read-only", "disk full"), or
    None. Root may use the blocks a file system reserves for it; other users may not."""
    space = os.statvfs(database.parent)
    if space.f_flag & os.ST_RDONLY or not all(os.access(path, os.W_OK) for path in files_of(database) if path.exists()):
        return "read-only"
    free = space.f_bfree if os.geteuid() == 0 else space.f_bavail
    if free * space.f_frsize < ROOM_NEEDED:
        return "disk full"
    return None
