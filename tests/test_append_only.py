"""deploy/append-only.sql on PostgreSQL: the application's role appends and verifies, but cannot change or
remove an event or a chain row; the owner migrates. What the README's "Append-only on PostgreSQL" says."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from tests.backends import POSTGRES_URL, fresh_database, postgres_available
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate

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
                owner.execute(script)  # type: ignore[call-overload]  # a trusted file of several statements
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
    stores = EventStores(app_url)
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
                    app.execute(statement)  # type: ignore[call-overload]
    with psycopg.connect(owner_url, autocommit=True) as owner:  # the owner still could: the checkpoints are for that
        owner.execute("ALTER TABLE orders_events DISABLE TRIGGER ugc_append_only")
        assert owner.execute("DELETE FROM orders_events WHERE originator_version = 2").rowcount == 1
