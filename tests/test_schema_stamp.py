"""A server process migrates only a database another code migrated last: `ugc serve` migrated it
before starting its workers (`ugc/platform/schema_stamp.py`). It still refuses a database whose
restore runs or did not finish, as a migration does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from api.app import build_app
from tests.backends import environment, fresh_database
from tests.conftest import checked_client
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.restore_record import RestoreRecord, write_record
from ugc.platform.schema_stamp import code_digest
from ugc.platform.serving_lock import RestorePending, restoring
from ugc.wiring import migrate_unless_current, runtime

HUNG = 60.0  # seconds: a bound for a start that waits for a lock nobody lets go


def served_once(settings: Settings) -> None:
    """A server process's start, one request and its stop (an in-process app, as every worker's)."""
    with checked_client(build_app(lambda: runtime(settings, clock=MovableClock()))) as client:
        assert client.get("/healthz").status_code == 200


def test_a_server_process_starts_on_a_schema_its_code_migrated_beside_a_migration_holding_the_lock(
    backend: str, tmp_path: Path
) -> None:
    """Every worker migrated again as it started: each waited for the lock behind the others, or
    behind any other process's migration, for as long as that took."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        settings = Settings.from_env(environment(backend, url, tmp_path))
        db = Database(url)
        failed: list[BaseException] = []

        def start() -> None:
            try:
                served_once(settings)
            except BaseException as error:
                failed.append(error)

        starting = threading.Thread(target=start, daemon=True)
        try:
            with db.exclusive_lock("migrate"):  # another process migrates, as long as it takes
                starting.start()
                starting.join(HUNG)
                assert not starting.is_alive(), "the start waited for the migration's lock"
            assert not failed, failed
        finally:
            starting.join(HUNG)
            db.close()


def test_a_server_process_migrates_a_database_another_code_migrated_last(backend: str, tmp_path: Path) -> None:
    """A worker of another version (an installation upgraded in place, the workers renewed by a
    SIGHUP) must not serve a schema it does not know: it migrates, and the stamp is its code's."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        settings = Settings.from_env(environment(backend, url, tmp_path))
        db = Database(url)
        try:
            with db.transaction(write=True) as cur:
                cur.execute("UPDATE schema_stamp SET code = 'another version'")
                cur.execute("DROP TABLE auth_failures")  # a table that version did not have
            served_once(settings)
            with db.read() as cur:
                assert cur.execute("SELECT code FROM schema_stamp").fetchall() == [{"code": code_digest()}]
                assert cur.execute("SELECT COUNT(*) AS n FROM auth_failures").fetchone() == {"n": 0}
        finally:
            db.close()


def test_a_server_process_on_a_current_schema_refuses_a_restore_under_way_or_unfinished(
    backend: str, tmp_path: Path
) -> None:
    """`ugc serve` migrated, then a restore began before its worker started, or one stopped between
    its steps left its record: the worker serves neither, as its migration refused them before."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        db = Database(url)
        try:
            with restoring(url), pytest.raises(RestorePending, match="a restore is under way"):
                migrate_unless_current(db)
            write_record(url, RestoreRecord("signature", "2026-12-05T14:08:52.736760Z", "/backups/20261205T140852Z"))
            with pytest.raises(RestorePending, match="did not finish: `ugc restore /backups/20261205T140852Z`"):
                migrate_unless_current(db)
        finally:
            db.close()
