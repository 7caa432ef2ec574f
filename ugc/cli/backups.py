"""`ugc backup DEST` and `ugc restore SRC` (README: "Backups and restores")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ugc.cli.auditing import verify
from ugc.cli.common import check_data_key, confirmed, file_in_the_way, version
from ugc.cli.users import replay_erasures
from ugc.config import Settings

if TYPE_CHECKING:
    from ugc.platform import restores


def add_parsers(commands: Any) -> None:
    backup = commands.add_parser(
        "backup",
        help="back the deployment up, in use, into a new directory: database, UGC_AUDIT_DIR, media, manifest",
    )
    backup.add_argument("dest", type=Path, help="a directory that does not exist yet (or is empty)")
    backup.set_defaults(run=lambda settings, args: _backup(settings, args.dest))

    restore = commands.add_parser(
        "restore",
        help="restore a backup into an empty target, acknowledge it, erase again from the journal, verify",
        description="Checks the backup against its manifest, restores its database into the empty target of "
        "UGC_DATABASE_URL (PostgreSQL: a new database, made if missing), adds what UGC_AUDIT_DIR and the "
        "media lack from it, moves the checkpoints written since the backup began aside (the events after "
        "the backup are given up), carries out the erasure journal again and verifies the result. Run again "
        "with the same backup, it finishes a restore of it that stopped on that target.",
    )
    restore.add_argument("source", type=Path, help="a directory `ugc backup` made")
    restore.add_argument("--yes", action="store_true", help="do not ask: the events after the backup are given up")
    restore.add_argument(
        "--replace",
        action="store_true",
        help="SQLite: move the database files already there aside (into replaced-<time>/ beside them) first",
    )
    restore.set_defaults(run=lambda settings, args: _restore(settings, args.source, yes=args.yes, replace=args.replace))


def _backup(settings: Settings, dest: Path) -> int:
    from projections.rebuild_progress import RebuildProgress
    from ugc.platform.backup_manifest import BackupRefused
    from ugc.platform.backups import back_up, count_files, refuse_destination, refuse_without_media, sweep_unfinished
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores
    from ugc.platform.stored_bytes import stored_by_all

    if file_in_the_way("backup", settings):
        return 2
    db = Database(settings.database_url)
    try:
        kept = stored_by_all(db)
    finally:
        db.close()
    try:
        refuse_destination(dest, settings)
        refuse_without_media(settings, kept)
    except BackupRefused as refused:
        print(f"ugc: backup: {refused}", file=sys.stderr)
        return 2
    if dest.parent.is_dir():
        for unfinished in sweep_unfinished(dest.parent):
            print(f"removed {unfinished}: a backup that was killed before it finished", file=sys.stderr)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    shown = RebuildProgress("backup", count_files(settings), sys.stderr, unit="files")
    try:
        manifest = back_up(dest, settings, stores, version(), shown.advance)
    except BackupRefused as refused:
        print(f"ugc: backup: {refused}", file=sys.stderr)
        return 2
    finally:
        shown.close()
        stores.close()
    shown.finish()
    heads = ", ".join(f"{name} {head['position']}" for name, head in manifest["heads"].items())
    size = sum(entry["size"] for entry in manifest["files"].values())
    print(f"backed up into {dest}: {len(manifest['files'])} files, {size:,} bytes; logs at {heads}")
    return 0


def _restore(settings: Settings, source: Path, *, yes: bool, replace: bool) -> int:
    """README: "Backups and restores". Refusals come before anything is written."""
    from ugc.platform import restores
    from ugc.platform.backup_manifest import BackupRefused
    from ugc.platform.restore_record import ACKNOWLEDGED

    try:
        restore = restores.checked(source, settings, replace=replace)
    except BackupRefused as refused:
        print(f"ugc: restore: {refused}", file=sys.stderr)
        return 2
    given_up = [] if restore.done(ACKNOWLEDGED) else restore.checkpoints_given_up()  # moved aside already
    manifest = restore.manifest
    heads = ", ".join(f"{name} {head['position']}" for name, head in manifest["heads"].items())
    print(
        f"backup of {manifest['started_at']} (ugc {manifest['code_version']}) checked: "
        f"{len(manifest['files'])} files; logs at {heads}"
    )
    if given_up:
        named = ", ".join(given_up) if len(given_up) <= 2 else f"{given_up[0]} ... {given_up[-1]}"
        print(f"{len(given_up)} checkpoint(s) written since the backup began will be moved aside: {named}")
    if not (yes or confirmed("whatever happened after the backup is given up; type yes to restore: ", "yes")):
        nothing = "nothing more was done" if restore.record else "nothing was restored"
        print(f"ugc: restore: not confirmed; {nothing} (--yes confirms it)", file=sys.stderr)
        return 2
    try:
        with restores.servers_kept_out(restore) as restore:  # for the whole run, on both backends
            return _restored(restore, settings)
    except BackupRefused as refused:
        print(f"ugc: restore: {refused}", file=sys.stderr)
        return 2


def _restored(restore: restores.Restore, settings: Settings) -> int:
    """Steps 2 to 7 of the README's "Restoring", the target checked and every server kept out of it;
    those done by a restore of this backup stopped earlier are skipped, each other one recorded once
    done. The erasures' replay and the verification, which change nothing a second time, run anew."""
    from datetime import UTC, datetime

    from ugc.ids import ID_KINDS
    from ugc.platform import restores
    from ugc.platform.restore_floors import floor_at, raise_floors
    from ugc.platform.restore_record import ACKNOWLEDGED, DATABASE, FILES, FLOORS

    if restore.record is not None:
        done = ", ".join(restore.record.done) or "none"
        print(f"finishing the unfinished restore of this backup found in the target (steps done: {done})")
    restore = restores.begun(restore)
    if not restore.done(DATABASE):
        print(restores.restore_database(restore, datetime.now(UTC)), flush=True)
        restore = restores.step_done(restore, DATABASE)
    if not restore.done(FLOORS):  # before anything appends: the erasures' replay below does
        floor = floor_at(datetime.now(UTC))
        raise_floors(settings.database_url, floor, ID_KINDS)
        print(f"log positions and public ids drawn from {floor} on: none the events after the backup had")
        restore = restores.step_done(restore, FLOORS)
    check_data_key(settings)
    if not restore.done(FILES):
        for line in restores.restore_files(restore):
            print(line)
        restore = restores.step_done(restore, FILES)
    if not restore.done(ACKNOWLEDGED):
        aside, moved = restores.acknowledge(restore)
        print(
            f"restore acknowledged: {len(moved)} checkpoint(s) moved to {aside}" if moved else "no checkpoint to move"
        )
        restore = restores.step_done(restore, ACKNOWLEDGED)
    replayed = _replay_with_projections(settings)
    status = verify(settings, as_json=False) or replayed
    restores.finished(restore)
    return status


def _replay_with_projections(settings: Settings) -> int:
    """`ugc users erase --replay`, with the read models' projections run here meanwhile (an erasure
    waits for them); not the side effects: a restore sends no mail."""
    from commands.accounts import AccountCommands
    from projections.registry import all_projections
    from readmodels.waiting import Progress
    from ugc.clock import SystemClock
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores
    from ugc.wiring import password_hasher, projection_runner

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    accounts = AccountCommands(stores, db, SystemClock(), hasher=password_hasher(settings))
    read_models = [p.name for p in all_projections(settings) if p.read_model]
    try:
        with projection_runner(settings, db, stores, Progress(), only=read_models) as runner:
            runner.start()
            return replay_erasures(settings, accounts, stores, db, restoring=True)
    finally:
        stores.close()
        db.close()
