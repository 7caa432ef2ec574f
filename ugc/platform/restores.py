"""`ugc restore SRC`: a backup of `ugc backup` put back (README: "Backups and restores").

Nothing is written until the backup checks out against its manifest and the target is found empty:
SQLite's six files where none is, PostgreSQL's dump into a new database (made if missing) in one
transaction. Then the audit directory and the media get what they lack from the backup (the live
ones, kept outside the database, usually hold more: erasures and uploads since), and the restore is
acknowledged: the checkpoints written since the backup began, which sign log ends the restored
database no longer has, are moved aside into `UGC_AUDIT_DIR/restored-<backup time>/`, never deleted.
All along, no server runs on the target (`serving_lock.py`), and the target records which backup is
restored and which steps are done (`restore_record.py`): the same restore run again finishes one
that stopped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ugc.config import Settings, is_postgres, sqlite_path
from ugc.platform.backup_manifest import BackupRefused, read_manifest
from ugc.platform.backups import DUMP, SQLITE_ORDER, kept_files, sqlite_files
from ugc.platform.checkpoints import PREFIX
from ugc.platform.durable import sync_directory, sync_file
from ugc.platform.erasure_journal import NAME as JOURNAL
from ugc.platform.pg_tools import create_database, holds_data, run, tool
from ugc.platform.restore_record import RestoreRecord, clear_record, read_record, write_record
from ugc.platform.serving_lock import restoring, served

SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Restore:
    """A checked backup and where it goes."""

    source: Path
    manifest: dict[str, Any]
    settings: Settings
    replace: bool  # SQLite: move the database files in the way aside
    created: bool = False  # PostgreSQL: the database was made by this restore
    record: RestoreRecord | None = None  # in the target: this backup's restore, to finish

    def done(self, step: str) -> bool:
        """Whether `step` was done by this restore, or by the one of this backup it finishes."""
        return self.record is not None and step in self.record.done

    @property
    def backed_up_at(self) -> str:
        """The backup's start as checkpoint names write a time (`20261205T140852736760Z`)."""
        started = datetime.fromisoformat(str(self.manifest["started_at"]).replace("Z", "+00:00"))
        return started.strftime("%Y%m%dT%H%M%S%fZ")

    def checkpoints_given_up(self) -> list[str]:
        """The checkpoints (here or in the backup) written since the backup began: what the restore gives up."""
        names = {path.name for path in self._checkpoints(self.settings.audit_dir)}
        names |= {path.name for path in self._checkpoints(self.source / "audit")}
        return sorted(name for name in names if name > f"{PREFIX}{self.backed_up_at}")

    @staticmethod
    def _checkpoints(directory: Path) -> list[Path]:
        return sorted(directory.glob(f"{PREFIX}*.json")) if directory.is_dir() else []


def checked(source: Path, settings: Settings, *, replace: bool) -> Restore:
    """The backup in `source` once it and its target check out; raises BackupRefused."""
    manifest = read_manifest(source, settings.audit_keys, settings.data_key)
    postgres = is_postgres(settings.database_url)
    if manifest.get("backend") != ("postgresql" if postgres else "sqlite"):
        raise BackupRefused(
            f"the backup is of a {manifest.get('backend')} database; UGC_DATABASE_URL names a "
            f"{'PostgreSQL' if postgres else 'SQLite'} one"
        )
    if postgres:
        tool("pg_restore", int(manifest["pg_dump_major"]))
        if replace:
            raise BackupRefused(
                "--replace is for SQLite: on PostgreSQL a backup is restored into a new database (name one in "
                "UGC_DATABASE_URL; keep the old one until the restored one verifies)"
            )
    elif replace and served(database := sqlite_path(settings.database_url)):
        raise BackupRefused(f"a ugc server (serve or project) runs on {database}: stop the deployment first")
    restore = Restore(source, manifest, settings, replace)
    return dataclasses.replace(restore, record=_check_target(restore))


def _check_target(restore: Restore) -> RestoreRecord | None:
    """The record of this backup's unfinished restore in the target, to finish; or None, the target
    empty (or, on SQLite with --replace, its files to move aside). Refuses a target that holds a
    database (on SQLite, but with --replace), or another backup's unfinished restore (the same)."""
    url = restore.settings.database_url
    record = read_record(url) if not is_postgres(url) or holds_data(url) is not None else None
    if record is not None and record.backup == restore.manifest["signature"]:
        return record
    if record is not None and not restore.replace:  # (with --replace, SQLite's: its files are moved aside)
        choices = [f"finish it first (`{record.finishing_command()}`)", "restore into another target"]
        if not is_postgres(url):
            choices.append("pass --replace to move its files aside and restore this one")
        raise BackupRefused(
            f"the target holds the unfinished restore of another backup (of {record.started_at}): "
            f"{', '.join(choices[:-1])}, or {choices[-1]}"
        )
    if is_postgres(url):
        if holds_data(url):
            raise BackupRefused(
                "the database of UGC_DATABASE_URL is not empty: name a new database there (it is made if missing)"
            )
    elif not restore.replace and (found := _sqlite_in_the_way(url)):
        raise BackupRefused(
            f"{found[0]} exists: restore into a data directory without the database, or pass --replace to move "
            "its files aside first"
        )
    return None


@contextmanager
def servers_kept_out(restore: Restore) -> Iterator[Restore]:
    """The restore's whole run, every server kept out of its target (`serving_lock.restoring`); the
    target checked again once they are: one may have started since the checks. PostgreSQL's
    database is made first if missing (the lock lives in it)."""
    url = restore.settings.database_url
    if is_postgres(url) and holds_data(url) is None:
        create_database(url)
        restore = dataclasses.replace(restore, created=True)
    with restoring(url):
        yield dataclasses.replace(restore, record=_check_target(restore))


def begun(restore: Restore) -> Restore:
    """The restore recorded in its target before the database step, unless it finishes one that is:
    from here on, a stop leaves a restore that `ugc restore` of this backup finishes."""
    if restore.record is not None:
        return restore
    record = RestoreRecord(
        str(restore.manifest["signature"]), str(restore.manifest["started_at"]), str(restore.source.resolve())
    )
    write_record(restore.settings.database_url, record)
    return dataclasses.replace(restore, record=record)


def step_done(restore: Restore, step: str) -> Restore:
    """`step` recorded as done in the target: a restore finishing this one skips it."""
    assert restore.record is not None, "begun() first"
    record = restore.record.with_done(step)
    write_record(restore.settings.database_url, record)
    return dataclasses.replace(restore, record=record)


def finished(restore: Restore) -> None:
    """Every step carried out: the target is a deployment again, servers may start on it."""
    clear_record(restore.settings.database_url)


def _sqlite_in_the_way(database_url: str) -> list[Path]:
    return [
        path.with_name(path.name + side)
        for _, path in sqlite_files(database_url)
        for side in SQLITE_SIDE_FILES
        if path.with_name(path.name + side).exists()
    ]


def restore_database(restore: Restore, now: datetime) -> str:
    """Put the backup's database in place; what was done, in a line."""
    url = restore.settings.database_url
    if is_postgres(url):
        if holds_data(url):  # a restore stopped after pg_restore committed, before it recorded so
            return "database restored already, by the restore stopped earlier"
        pg_restore, _ = tool("pg_restore", int(restore.manifest["pg_dump_major"]))
        run([pg_restore, "--single-transaction", str(restore.source / "database" / DUMP)], url)
        return f"database restored with pg_restore into {'a new' if restore.created else 'the empty'} database"
    moved = ""
    # Files are in the way only with --replace, or left by a restore stopped in this step: moved
    # aside, never overwritten (a -wal left beside a copied file would be read as that file's own).
    if in_the_way := _sqlite_in_the_way(url):
        aside = in_the_way[0].parent / f"replaced-{now.strftime('%Y%m%dT%H%M%S%fZ')}"
        aside.mkdir()
        for path in in_the_way:
            path.rename(aside / path.name)
        moved = f" ({len(in_the_way)} file(s) that were there moved to {aside})"
    drafts = [(path.with_name(f".{path.name}.restoring"), path) for _, path in sqlite_files(url)]
    try:  # every file copied beside its place first: a full disk leaves no database of some files
        for draft, path in drafts:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(restore.source / "database" / path.name, draft)
            sync_file(draft)  # durable before the restore's record says this step is done
    except BaseException:
        for draft, _ in drafts:
            draft.unlink(missing_ok=True)
        raise
    for draft, path in drafts:
        os.replace(draft, path)
    for directory in {path.parent for _, path in drafts}:
        sync_directory(directory)
    return f"database restored: the {len(SQLITE_ORDER)} SQLite files{moved}"


def restore_files(restore: Restore) -> list[str]:
    """Give the audit directory and the media what they lack from the backup; lines saying what."""
    audit, media = restore.settings.audit_dir, restore.settings.media_dir
    copied = _add_missing(restore.source / "audit", audit, skip={JOURNAL})
    lines = _merge_journal(restore.source / "audit" / JOURNAL, audit / JOURNAL)
    return [
        f"audit: {copied} file(s) and {lines} erasure journal line(s) added to {audit} from the backup",
        f"media: {_add_missing(restore.source / 'media', media)} file(s) added to {media} from the backup",
    ]


def _add_missing(source: Path, into: Path, skip: frozenset[str] | set[str] = frozenset()) -> int:
    added = 0
    for path in kept_files(source):
        target = into / path.relative_to(source)
        if path.name in skip or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        added += 1
    return added


def _merge_journal(backed_up: Path, live: Path) -> int:
    """Append the backup's journal lines the live journal lacks (each line is signed on its own)."""
    if not backed_up.is_file():
        return 0
    have = set(live.read_text(encoding="utf-8").splitlines()) if live.is_file() else set()
    missing = [line for line in backed_up.read_text(encoding="utf-8").splitlines() if line.strip() and line not in have]
    if missing:
        live.parent.mkdir(parents=True, exist_ok=True)
        with live.open("a", encoding="utf-8") as file:
            file.write("".join(line + "\n" for line in missing))
            file.flush()
            os.fsync(file.fileno())
    return len(missing)


def acknowledge(restore: Restore) -> tuple[Path, list[str]]:
    """Move the checkpoints written since the backup began into `restored-<backup time>/`."""
    audit = restore.settings.audit_dir
    aside = audit / f"restored-{restore.backed_up_at}"
    names = [name for name in restore.checkpoints_given_up() if (audit / name).exists()]
    if names:
        aside.mkdir(parents=True, exist_ok=True)
    for name in names:
        (audit / name).rename(aside / name)
    return aside, names
