"""The settings every SQLite connection of ours gets: the read side's (`Database`) and the event
stores' (`sqlite_store.py`), whose connections the library would open with SQLite's defaults.

A pragma of this kind holds for its connection only, so each connection is given them as it opens;
what differs between the two is said here, beside what they share.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

# Seconds a statement waits for another connection's lock on the file: given when a connection is
# opened (`Database`'s `timeout`; the library's SQLITE_LOCK_TIMEOUT, store.py), not as a pragma.
SQLITE_BUSY_TIMEOUT = 10.0
# Bytes of SQLite's write-ahead log kept once a checkpoint has emptied it. SQLite never shrinks the
# `-wal` file while a connection is open: one large transaction (a blue/green switch copies whole
# tables) or the writes of a long read (a replay, `ugc verify`, a backup) left it at that size until
# every process closed the file. Measured: 20 MB written in one transaction left a 20 MB `-wal`
# through the small writes after it; appends beside a held read left an event store's at 33 MB.
# Past this, a checkpoint that empties the log truncates it; the usual cycle (1,000 pages) stays
# under. It is the first writer after that checkpoint that truncates, so every connection that
# writes the file needs it.
SQLITE_WAL_KEPT_BYTES = 16 << 20

_EVERY_FILE: dict[str, str | int] = {
    "journal_mode": "WAL",
    "journal_size_limit": SQLITE_WAL_KEPT_BYTES,
    # Deleted and overwritten rows are zeroed in the file, not left in free pages: an erased person's
    # read rows, and in the accounts store the data keys an erasure destroys (README: "Personal data
    # and erasure"). Measured without it: a destroyed key's bytes stayed in the file. Builds differ
    # in the default (SQLite's own is off, Debian's on), so it is said here.
    "secure_delete": "ON",
}
# The read side is made from the logs and rebuilt from them: a power cut may take its last
# commits (NORMAL syncs at checkpoints only), and its tracking positions with them, so the
# projections apply those events again.
READ_SIDE: Mapping[str, str | int] = _EVERY_FILE | {"synchronous": "NORMAL"}
# The logs are the record itself: an append answered 2xx, or a chain head an audit checkpoint has
# signed, must survive a power cut, or `ugc verify` finds the log shorter than what was signed.
# FULL syncs the WAL at every commit (SQLite's default, but not every build's in WAL mode).
EVENT_STORES: Mapping[str, str | int] = _EVERY_FILE | {"synchronous": "FULL"}


def configure(connection: sqlite3.Connection | sqlite3.Cursor, pragmas: Mapping[str, str | int]) -> None:
    """Give a newly opened connection (or a cursor of it) `pragmas`."""
    for name, value in pragmas.items():
        connection.execute(f"PRAGMA {name}={value}")
