"""The record a restore keeps in its target until it has finished: which backup, which steps done.

A restore stopped after its database step (killed, a power cut, Ctrl-C while it acknowledges,
erases again or verifies) leaves a target that is no longer empty, which no new restore takes. With
this record, `ugc restore` of the same backup on that target carries out the steps not done yet and
only those; another backup there is refused, and no server starts on it (`serving_lock.migrating`)
until the record is gone. It is written before the database step and removed after the last one.

SQLite: `<database>.restoring`, a JSON file beside the database, replaced whole (a file written
beside and renamed over it, both made durable). PostgreSQL: the one-row table `ugc_restore` in the
target database; the dump restored beside it adds tables, so whether the database step committed
(`pg_restore --single-transaction`) is read from the tables, not only from the record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ugc.config import is_postgres, sqlite_path
from ugc.platform.database import KEEPALIVES
from ugc.platform.durable import sync_directory, write_whole

TABLE = "ugc_restore"
# The steps recorded once done (FLOORS: `restore_floors.py`)
DATABASE, FLOORS, FILES, ACKNOWLEDGED = "database", "floors", "files", "acknowledged"


@dataclass(frozen=True)
class RestoreRecord:
    backup: str  # the manifest's signature: the same backup wherever it was copied to
    started_at: str  # when the backup began, for people
    source: str  # where the backup was, for the command that finishes the restore
    done: tuple[str, ...] = ()

    def with_done(self, step: str) -> RestoreRecord:
        return RestoreRecord(self.backup, self.started_at, self.source, (*self.done, step))

    def finishing_command(self) -> str:
        return f"ugc restore {self.source}"


def record_file(database: Path) -> Path:
    return database.with_name(database.name + ".restoring")


def read_record(database_url: str) -> RestoreRecord | None:
    """The unfinished restore's record in the target; None when there is none (or no target)."""
    if is_postgres(database_url):
        from ugc.platform.postgres_driver import psycopg

        with psycopg.connect(database_url, autocommit=True, **KEEPALIVES) as conn:
            if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() == (None,):
                return None
            row = conn.execute(f"SELECT record FROM {TABLE}").fetchone()
        return _parsed(str(row[0])) if row else None
    path = record_file(sqlite_path(database_url))
    return _parsed(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_record(database_url: str, record: RestoreRecord) -> None:
    """Record `record` in the target, durably and whole (it replaces the one there)."""
    text = json.dumps(asdict(record), sort_keys=True)
    if is_postgres(database_url):
        from ugc.platform.postgres_driver import psycopg

        with psycopg.connect(database_url, **KEEPALIVES) as conn:  # one transaction
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (record text NOT NULL)")
            # Any role may read it: the application's role (README: "Append-only"), refused, is told why.
            conn.execute(f"GRANT SELECT ON {TABLE} TO PUBLIC")
            conn.execute(f"DELETE FROM {TABLE}")
            conn.execute(f"INSERT INTO {TABLE} (record) VALUES (%s)", (text,))
        return
    write_whole(record_file(sqlite_path(database_url)), text)


def clear_record(database_url: str) -> None:
    """The restore has finished: its record goes."""
    if is_postgres(database_url):
        from ugc.platform.postgres_driver import psycopg

        with psycopg.connect(database_url, autocommit=True, **KEEPALIVES) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        return
    path = record_file(sqlite_path(database_url))
    path.unlink(missing_ok=True)
    sync_directory(path.parent)


def _parsed(text: str) -> RestoreRecord:
    fields = json.loads(text)
    return RestoreRecord(str(fields["backup"]), str(fields["started_at"]), str(fields["source"]), tuple(fields["done"]))
