"""`ugc backup DEST`: a consistent backup of a deployment in use (README: "Backups and restores").

The backup is made in a hidden sibling of DEST and renamed to DEST once its manifest, the last file,
is written: a backup that stopped half-way never looks like one. A backup that failed removes that
sibling; one killed (SIGKILL, a host going down) could not, and its copy of the whole deployment
stayed: the next `ugc backup` into the same directory removes it (`sweep_unfinished`), telling it
from a backup under way by the lock each holds on its own sibling. Inside a backup:

    database/   ugc.dump (PostgreSQL) or the six SQLite files
    audit/      UGC_AUDIT_DIR: the signed checkpoints and the erasure journal
    media/      UGC_MEDIA_DIR: the uploaded files
    manifest.json

The audit directory and the media are copied after the database: a file's bytes are stored before
the event that records it, and an erasure is journaled before its keys are destroyed, so both
copies hold all the database names (and perhaps a little it does not yet, which does no harm).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from ugc.config import Settings, is_postgres, sqlite_path
from ugc.platform.backup_manifest import BackupRefused, data_key_check, file_entry, files_under, write_manifest
from ugc.platform.chain import GENESIS, ChainHead, format_time
from ugc.platform.chain_postgres import ChainedPostgresRecorder
from ugc.platform.chain_sqlite import CHAIN_TABLE
from ugc.platform.durable import sync_directory
from ugc.platform.pg_tools import run, tool
from ugc.platform.restore_record import read_record
from ugc.platform.store import EventStores, eventsourcing_settings

DUMP = "ugc.dump"
_UNFINISHED = re.compile(r"^\..+\.partial-[0-9a-f]{8}$")  # the hidden sibling a backup is made in
# The SQLite files in the order they are copied: the read models first, so no projection's position
# is ahead of the log it reads (it catches up instead of skipping events), then each log before the
# logs it refers to (an order names a service and users that existed before it, so the catalog and
# accounts copied after it hold them). "" is the main file, the read side's.
SQLITE_ORDER = ("", "messaging", "orders", "files", "catalog", "accounts")


def sqlite_files(database_url: str) -> list[tuple[str, Path]]:
    """(log, path) of each SQLite file of the deployment, in SQLITE_ORDER ("" for the read side's)."""
    return [
        (name, Path(eventsourcing_settings(database_url, name, create_table=False)["SQLITE_DBNAME"]))
        if name
        else ("", sqlite_path(database_url))
        for name in SQLITE_ORDER
    ]


def kept_files(root: Path) -> list[Path]:
    """The files of a directory a backup keeps: not those being written (an upload's `.incoming`
    part, a checkpoint's `.partial`), which are complete under another name once done."""
    if not root.is_dir():
        return []
    return [
        path
        for path in files_under(root)
        if path.suffix != ".partial" and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]


def refuse_destination(dest: Path, settings: Settings) -> None:
    """A backup goes into a new (or empty) directory outside what it copies."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupRefused(f"{dest} exists and is not an empty directory: give a new one")
    nearest = next((parent for parent in dest.absolute().parents if parent.exists()), None)
    if nearest is not None and not nearest.is_dir():  # the directories up to DEST could not be made
        raise BackupRefused(f"{nearest} is no directory: give DEST where directories can be made")
    for copied in (settings.audit_dir, settings.media_dir):
        if dest.resolve().is_relative_to(copied.resolve()):
            raise BackupRefused(f"{dest} is inside {copied}, which the backup copies: give a directory elsewhere")


def refuse_without_media(settings: Settings, kept: int) -> None:
    """A deployment that keeps `kept` bytes of uploads is backed up with them: a UGC_MEDIA_DIR that is no
    directory (mistyped, or not mounted where the backup runs) made a backup without a single upload,
    whose restore could serve none of them."""
    if kept and not settings.media_dir.is_dir():
        raise BackupRefused(
            f"UGC_MEDIA_DIR {settings.media_dir} is no directory, but the database counts {kept:,} bytes of "
            "uploads kept there: give the deployment's media directory"
        )


def sweep_unfinished(directory: Path) -> list[Path]:
    """Remove the unfinished backups in `directory` that no process makes any more (it was killed);
    those removed."""
    removed = []
    for path in directory.iterdir():
        if not _UNFINISHED.match(path.name) or path.is_symlink() or not path.is_dir():
            continue
        try:
            held = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:  # its backup just finished, or failed
            continue
        try:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a backup under way makes it
                continue
            shutil.rmtree(path)
            removed.append(path)
        finally:
            os.close(held)
    return removed


def back_up(
    dest: Path, settings: Settings, stores: EventStores, version: str, advanced: Callable[[int], None]
) -> dict[str, Any]:
    """Back the deployment of `settings` up into the new directory `dest`; its manifest.

    `advanced(n)` is told of every n files copied (the database's, then the audit's and media's).
    """
    refuse_destination(dest, settings)
    if (record := read_record(settings.database_url)) is not None:  # half a deployment, its log not acknowledged
        raise BackupRefused(
            f"the restore of the backup of {record.started_at} into this database did not finish: "
            f"`{record.finishing_command()}` finishes it; back up after"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{secrets.token_hex(4)}")
    partial.mkdir()
    # Held until the process ends, however it ends: a later backup leaves it alone while it is held.
    # (Swept in the instant between the mkdir and the lock, this backup fails loudly: its files go nowhere.)
    held = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        started = datetime.now(UTC)
        postgres = is_postgres(settings.database_url)
        tools: dict[str, int] = {}
        if postgres:
            heads, tools["pg_dump_major"] = _dump(settings.database_url, stores, partial / "database")
            advanced(1)
        else:
            heads = _copy_sqlite(settings.database_url, partial / "database", advanced)
        for name, source in (("audit", settings.audit_dir), ("media", settings.media_dir)):
            _copy_files(source, partial / name, advanced)
        document = {
            "backend": "postgresql" if postgres else "sqlite",
            "started_at": format_time(started),
            "finished_at": format_time(datetime.now(UTC)),
            "code_version": version,
            "heads": heads,
            "data_key_check": data_key_check(settings.data_key),
            "files": {str(path.relative_to(partial)): file_entry(path) for path in files_under(partial)},
            **tools,
        }
        # Every copy and directory entry on disk before the manifest says the backup is whole: one
        # call for what may be thousands of media files (a backup is rare; it flushes other files too).
        os.sync()
        write_manifest(partial, settings.audit_key, document)
        os.rename(partial, dest)  # an empty `dest` is replaced; one filled meanwhile refuses it
        sync_directory(dest.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        os.close(held)
    return document


def _head(head: ChainHead | None) -> dict[str, Any]:
    return {"position": head.position if head else 0, "link": (head.link if head else GENESIS).hex()}


def _dump(database_url: str, stores: EventStores, into: Path) -> tuple[dict[str, Any], int]:
    """`pg_dump --format=custom` in a snapshot of our own, in which each log's head is read too (the
    manifest's heads are exactly the dump's); the heads and pg_dump's major version."""
    into.mkdir()
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        path, major = tool("pg_dump", conn.info.server_version // 10000)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.cursor() as cur:
            snapshot = _one(cur, "SELECT pg_export_snapshot() AS id")["id"]
            heads: dict[str, Any] = {name: _head(_recorder(stores, name).head_in(cur)) for name in stores.applications}
            run([path, "--format=custom", f"--snapshot={snapshot}", f"--file={into / DUMP}"], database_url)
        conn.rollback()
    return heads, major


def _one(cur: psycopg.Cursor[DictRow], statement: str) -> DictRow:
    row = cur.execute(statement).fetchone()
    assert row is not None
    return row


def _recorder(stores: EventStores, name: str) -> ChainedPostgresRecorder:
    recorder = stores.chained(name)
    assert isinstance(recorder, ChainedPostgresRecorder)
    return recorder


def _copy_sqlite(database_url: str, into: Path, advanced: Callable[[int], None]) -> dict[str, Any]:
    """SQLite's online backup of each file, in SQLITE_ORDER, beside live writers; each log's head
    as its copy holds it."""
    into.mkdir()
    heads: dict[str, Any] = {}
    for log, path in sqlite_files(database_url):
        if not path.is_file():
            raise BackupRefused(f"{path} does not exist: is UGC_DATABASE_URL the deployment's?")
        with closing(sqlite3.connect(path, timeout=30)) as source, closing(sqlite3.connect(into / path.name)) as copy:
            # In one step: a backup in several steps starts again whenever another connection writes.
            source.backup(copy)
            if log:
                row = copy.execute(
                    f"SELECT notification_id, link FROM {CHAIN_TABLE} ORDER BY notification_id DESC LIMIT 1"
                ).fetchone()
                heads[log] = _head(ChainHead(row[0], bytes(row[1]), None) if row else None)
        advanced(1)
    return heads


def _copy_files(source: Path, into: Path, advanced: Callable[[int], None]) -> None:
    for path in kept_files(source):
        target = into / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        advanced(1)


def count_files(settings: Settings) -> int:
    """How many files a backup of `settings` copies, about: for its progress."""
    database = 1 if is_postgres(settings.database_url) else len(SQLITE_ORDER)
    return database + len(kept_files(settings.audit_dir)) + len(kept_files(settings.media_dir))
