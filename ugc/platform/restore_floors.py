"""After a restore, every log position and public id is drawn past what the given-up events used.

A notification's id and a chat message's place are log positions, and a message's id, like every
public id, comes from a sequence; clients hold them (a socket's `since=`, a bookmark, a token's user
id). A restore puts the logs and the sequences back where the backup found them, while the
deployment it replaces had gone on: drawn again, the same positions and ids would name other events
and objects, and a client resuming with `since=` would skip the new notifications up to the one that
took its old id. So before anything appends, the restore raises every log's next position and every
public-id sequence to a floor that no timeline can have reached: RATE times the Unix time of the
restore (or past the sequence, if it is further on).

Why that holds without asking the given-up deployment (gone, or elsewhere): a timeline's positions
start at 1, or at an earlier restore's floor, RATE times the time of that restore, and grow by fewer
than RATE a second, so at any moment they are below RATE times the time. A floor from the backup's
heads plus a margin would not do: a second restore of the same backup would draw, from the same
floor, the positions the first one's deployment handed out. It needs the restoring host's clock
right (a clock ahead by an hour at one restore lends that timeline an hour of RATE).

PostgreSQL: `setval` of each log's `notification_id` sequence and of the `ugc_seq_<kind>` ones.
SQLite: the `id_sequences` rows, and for each log a row of `FLOOR_TABLE` in its file, which the
recorder's first append past it moves its events to (`chain_sqlite.py`): SQLite gives an events row
the largest rowid plus one, and the table has no AUTOINCREMENT (so no `sqlite_sequence`) to raise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ugc.config import is_postgres, sqlite_path
from ugc.platform.backups import sqlite_files
from ugc.platform.chain_sqlite import FLOOR_TABLE
from ugc.platform.database import KEEPALIVES, sequence_name
from ugc.platform.store import APPLICATION_CLASSES

# Positions (or ids) a second that no log draws on average: four times the raw INSERT+COMMIT
# ceiling measured on our machines (pgbench 23,652 tx/s; placing orders peaked at 1,639 req/s). At
# today's Unix time a floor is ~1.8e14, a notification id (position x 8) ~1.4e15: below 2**53, the
# largest integer a JavaScript client reads exactly, until the 2300s.
RATE = 100_000


def floor_at(now: datetime) -> int:
    """The first position and id drawn after a restore at `now` (at least): to the microsecond, so
    that a restore seconds after another still draws past what was appended between them."""
    microseconds = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return microseconds * RATE // 1_000_000


def raise_floors(database_url: str, floor: int, id_kinds: Sequence[str]) -> None:
    """Draw every log position and public id (of `id_kinds`: `ugc.ids.ID_KINDS`) of the restored
    database from `floor` on, or past the sequence where it is further on already (a restore run
    again: nothing goes back)."""
    if is_postgres(database_url):
        _raise_postgres(database_url, floor, id_kinds)
        return
    for log, path in sqlite_files(database_url):
        if log:
            _raise_sqlite_log(path, floor)
    with closing(sqlite3.connect(sqlite_path(database_url))) as conn, conn:  # one transaction
        conn.executemany(
            "INSERT INTO id_sequences (kind, value) VALUES (?, ?) "
            "ON CONFLICT (kind) DO UPDATE SET value = MAX(id_sequences.value, excluded.value)",
            [(kind, floor - 1) for kind in id_kinds],  # `value` is the last id taken
        )


def _raise_sqlite_log(path: Path, floor: int) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (position INTEGER NOT NULL)")
        before = conn.execute(f"SELECT MAX(position) FROM {FLOOR_TABLE}").fetchone()[0] or 0
        conn.execute(f"DELETE FROM {FLOOR_TABLE}")
        conn.execute(f"INSERT INTO {FLOOR_TABLE} (position) VALUES (?)", (max(before, floor),))


def _raise_postgres(database_url: str, floor: int, id_kinds: Sequence[str]) -> None:
    from ugc.platform.postgres_driver import psycopg

    with psycopg.connect(database_url, **KEEPALIVES) as conn:  # one transaction
        sequences = []
        for app in APPLICATION_CLASSES:  # each log's table, `<log>_events` as the library names it
            row = conn.execute(
                "SELECT pg_get_serial_sequence(t::text, 'notification_id') FROM to_regclass(%s) AS t",
                (f"{app.name}_events",),
            ).fetchone()
            if row is not None and row[0] is not None:
                sequences.append(str(row[0]))
        for kind in id_kinds:  # made if the backup predates a kind, as `ugc migrate` would make it from 1
            conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {sequence_name(kind)}")
            sequences.append(sequence_name(kind))
        for sequence in sequences:
            # `setval(s, v)`: the next value drawn is v + 1.
            conn.execute(
                "SELECT setval(s, GREATEST(%s, COALESCE(pg_sequence_last_value(s), 0))) "
                "FROM (SELECT %s::regclass AS s) AS q",
                (floor - 1, sequence),
            )
