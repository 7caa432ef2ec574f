"""deploy/append-only.sql on PostgreSQL: the application's role appends and verifies, but cannot change or
remove an event or a chain row; the owner migrates, and its rebuilds keep the role's grants. What the
README's "Append-only on PostgreSQL" says."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from projections.bluegreen import rebuild, rebuild_outdated
from projections.registry import all_projections
from tests.backends import DATA_KEY, POSTGRES_URL, environment, fresh_database, postgres_available
from tests.conftest import Api, new_client
from tests.orders_world import a_deal, place
from tests.test_bluegreen import OrdersV2
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.restore_record import RestoreRecord, write_record
from ugc.platform.serving_lock import RestorePending
from ugc.platform.store import EventStores
from ugc.wiring import migrate, migrate_unless_current

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "append-only.sql"
pytestmark = pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not a PostgreSQL URL")


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture
def owner_and_app(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A migrated database (by its owner) and the URL of an application role the script restricted."""
    role, password = f"ugc_app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with fresh_database("postgres", tmp_path) as owner_url:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), password))
        try:
            db = Database(owner_url)
            migrate(db)
            db.close()
            script = re.sub(r':"app_role"', sql.Identifier(role).as_string(), SCRIPT.read_text())
            with psycopg.connect(owner_url, autocommit=True) as owner:
                owner.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(urlsplit(owner_url).path.lstrip("/")), sql.Identifier(role)
                    )
                )
                owner.execute(script)  # a trusted file of several statements
            yield owner_url, as_role(owner_url, role, password)
        finally:
            with psycopg.connect(owner_url, autocommit=True) as owner:
                owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_application_role_appends_but_never_changes_the_log(owner_and_app: tuple[str, str]) -> None:
    owner_url, app_url = owner_and_app
    db = Database(app_url)
    migrate(db)  # as a server starts: the owner's schema is left alone, no permission error
    db.close()
    stores = EventStores(app_url, data_key=DATA_KEY)
    try:
        stream = uuid.uuid4()
        stores.orders.recorder.insert_events([StoredEvent(stream, 1, "ugc.Order.Updated", b'{"v":1}')])
        stores.orders.recorder.insert_events([StoredEvent(stream, 2, "ugc.Order.Updated", b'{"v":2}')])
        assert [e.version for e in stores.recorded_events("orders", stream)] == [1, 2]
    finally:
        stores.close()
    with psycopg.connect(app_url, autocommit=True) as app:
        for table in ("orders_events", "orders_events_chain"):
            for statement in (
                f"UPDATE {table} SET originator_version = originator_version",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
                f"ALTER TABLE {table} DISABLE TRIGGER ugc_append_only",
                f"DROP TRIGGER ugc_append_only ON {table}",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(statement)
    with psycopg.connect(owner_url, autocommit=True) as owner:  # the owner still could: the checkpoints are for that
        owner.execute("ALTER TABLE orders_events DISABLE TRIGGER ugc_append_only")
        assert owner.execute("DELETE FROM orders_events WHERE originator_version = 2").rowcount == 1


def grants(owner: psycopg.Connection[tuple[object, ...]], tables: Sequence[str]) -> set[tuple[object, ...]]:
    """Every privilege granted on `tables`: (table, grantee, privilege, grantable); the grantee "-" is PUBLIC."""
    return set(
        owner.execute(
            "SELECT c.relname::text, a.grantee::regrole::text, a.privilege_type, a.is_grantable "
            "FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)",
            (list(tables),),
        ).fetchall()
    )


def test_a_rebuild_by_the_owner_keeps_the_grants_of_the_tables_it_replaces(
    owner_and_app: tuple[str, str], tmp_path: Path
) -> None:
    owner_url, app_url = owner_and_app
    role = urlsplit(app_url).username
    assert role is not None
    settings = Settings.from_env(environment("postgres", app_url, tmp_path))
    read_models = [p for p in all_projections(settings) if p.read_model]
    tables = [table for p in read_models for table in p.tables]
    with psycopg.connect(owner_url, autocommit=True) as owner:
        # Grants the script does not make, to show the copies are exact: PUBLIC, and a grant option.
        owner.execute("GRANT SELECT ON categories TO PUBLIC")
        owner.execute(sql.SQL("GRANT REFERENCES ON orders TO {} WITH GRANT OPTION").format(sql.Identifier(role)))
        before = grants(owner, tables)
        # A table owning a sequence (serial, identity) would need the sequence's grants copied too.
        owned = owner.execute(
            "SELECT s.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid "
            "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' WHERE t.relname = ANY(%s)",
            (tables,),
        ).fetchall()
    assert owned == [], "projections/grants.py copies the grants of tables, not of the sequences they own"
    full = ("SELECT", "INSERT", "UPDATE", "DELETE")
    assert {(table, role, privilege, False) for table in tables for privilege in full} <= before
    assert ("categories", "-", "SELECT", False) in before and ("orders", role, "REFERENCES", True) in before

    with new_client(settings, MovableClock()) as client:  # a server as the application's role
        api = Api(client, settings)
        deal = a_deal(api)
        place(api, deal)
        db, stores = Database(owner_url), EventStores(owner_url, data_key=DATA_KEY)
        try:
            rebuild(db, stores, read_models)  # `ugc rebuild`, as the README has the owner run it
            with psycopg.connect(owner_url) as owner:
                assert grants(owner, tables) == before
            # A new version's rebuild at a runner's start (here the owner's runner) switches the same way.
            assert rebuild_outdated(db, stores, lambda: [OrdersV2()], threading.Event()) == ["orders"]
            with psycopg.connect(owner_url) as owner:
                assert grants(owner, tables) == before
        finally:
            stores.close()
            db.close()
        place(api, deal)  # 201: the orders projection applies the order to the new tables
        listed = client.get("/api/v1/orders/", headers=deal.buyer["headers"])
        assert listed.status_code == 200, listed.text
        assert listed.json()["count"] == 2


def test_the_application_role_is_told_a_restore_of_its_database_did_not_finish(
    owner_and_app: tuple[str, str],
) -> None:
    """A restore, run as the owner, stopped between its steps: its record is in the database."""
    owner_url, app_url = owner_and_app
    write_record(owner_url, RestoreRecord("signature", "2026-12-05T14:08:52.736760Z", "/backups/20261205T140852Z"))
    db = Database(app_url)
    try:
        with pytest.raises(RestorePending, match="did not finish: `ugc restore /backups/20261205T140852Z` finishes it"):
            migrate(db)  # as a server starts
    finally:
        db.close()


def test_the_application_role_starts_a_server_whether_or_not_it_may_read_the_schema_stamp(
    owner_and_app: tuple[str, str],
) -> None:
    """A later version's `ugc migrate`, run by the owner, makes tables the application's role may read
    only once `deploy/append-only.sql` runs again: its servers start meanwhile as they did before the
    stamp, their migration leaving the owner's schema alone (not refused for want of a privilege)."""
    owner_url, app_url = owner_and_app
    app_role = urlsplit(app_url).username
    assert app_role is not None
    db = Database(app_url)
    try:
        migrate_unless_current(db)  # the owner migrated with this code: nothing to do
        with psycopg.connect(owner_url, autocommit=True) as owner:
            owner.execute(sql.SQL("REVOKE SELECT ON schema_stamp FROM {}").format(sql.Identifier(app_role)))
        migrate_unless_current(db)
    finally:
        db.close()
