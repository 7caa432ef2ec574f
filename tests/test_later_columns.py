"""`ugc migrate` on a database made before a read table got a column: the column is added and the
projection that keeps the table is rewound, so it refills the table from the log, column included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from readmodels import tracking
from readmodels.notifications import list_notifications, unread_count
from readmodels.pages import PageRequest, read_page
from readmodels.schema import LATER_COLUMNS, LATER_INDEXES
from tests.backends import fresh_database
from ugc.platform import refresh_families
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.wiring import migrate

NOW = "2026-03-01T12:00:00+00:00"
KEYS_LATER_COLUMNS = ("appended", "intent", "etag")  # idempotency_keys' (ugc/platform/idempotency_keys.py)


def test_an_older_database_gets_the_later_columns_and_their_projections_rewound(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            migrate(db)
            with db.transaction(write=True) as cur:
                for name, _ in LATER_INDEXES:
                    cur.execute(f"DROP INDEX {name}")
                for table, column, _, _ in LATER_COLUMNS:  # as a database made before them was
                    cur.execute(f"ALTER TABLE {table} DROP COLUMN {column.split()[0]}")
                for column in KEYS_LATER_COLUMNS:
                    cur.execute(f"ALTER TABLE idempotency_keys DROP COLUMN {column}")
                cur.execute("ALTER TABLE parked_events DROP COLUMN retry_at")
                cur.execute("ALTER TABLE lease_members DROP COLUMN leases")
                cur.execute("ALTER TABLE lease_members DROP COLUMN versions")
                cur.execute("ALTER TABLE auth_failures DROP COLUMN attempt")
                cur.execute("ALTER TABLE auth_failures DROP COLUMN in_flight")
                cur.execute("ALTER TABLE auth_failures DROP COLUMN member")
                cur.execute("ALTER TABLE refresh_families DROP COLUMN first_jti")
                cur.execute("ALTER TABLE refresh_families DROP COLUMN rotating")
                cur.execute("ALTER TABLE refresh_families DROP COLUMN previous_jti")
                cur.execute("ALTER TABLE refresh_families DROP COLUMN current_issued_at")
                cur.execute(
                    "INSERT INTO refresh_families (family, user_id, current_jti, expires_at) VALUES ('f', 1, 'j0', %s)",
                    (datetime.now(UTC) + timedelta(days=1),),
                )
                if backend == "sqlite":  # SQLite's alone (ugc/platform/erasures.py)
                    cur.execute("ALTER TABLE erasure_marks DROP COLUMN at")
                    cur.execute("INSERT INTO erasure_marks (user_id) VALUES (5)")
                cur.execute(
                    "INSERT INTO auth_failures (scope, key, at) VALUES ('address', 'x', %s)", (datetime.now(UTC),)
                )
                for projection in ("accounts", "listings", "portfolio", "notifications", "orders"):
                    tracking.register(cur, projection, "catalog", read_model=True)
                cur.execute("UPDATE projection_tracking SET position = 42")
                a_user(cur)

            migrate(db)

            with db.read() as cur:
                for table, column, _, _ in LATER_COLUMNS:
                    cur.execute(f"SELECT {column.split()[0]} FROM {table} WHERE 1 = 0")  # fails if missing
                cur.execute(f"SELECT {', '.join(KEYS_LATER_COLUMNS)} FROM idempotency_keys WHERE 1 = 0")
                cur.execute("SELECT retry_at FROM parked_events WHERE 1 = 0")
                cur.execute("SELECT leases, versions FROM lease_members WHERE 1 = 0")
                if backend == "sqlite":  # a mark of the earlier release: of no known age, swept next
                    assert cur.execute("SELECT user_id, at FROM erasure_marks").fetchall() == [
                        {"user_id": 5, "at": None}
                    ]
                # A failure of the earlier release stays a failure.
                assert cur.execute("SELECT attempt, in_flight, member FROM auth_failures").fetchall() == [
                    {"attempt": None, "in_flight": False, "member": None}
                ]
                for name, _ in LATER_INDEXES:
                    assert cur.execute(*_index_query(cur, name)).fetchone() is not None
            # A session of the earlier release rotates, as every session did then: its spent token ends it
            # (past the reuse window; within it, its predecessor is answered its successor again).
            now, window = datetime.now(UTC), timedelta(seconds=30)
            j1 = refresh_families.FamilyToken("j1", now, now + timedelta(days=2))
            assert refresh_families.rotate(db, "f", "j0", j1, now, window) == j1
            j2 = refresh_families.FamilyToken("j2", now, now + timedelta(days=2))
            assert refresh_families.rotate(db, "f", "j0", j2, now + timedelta(seconds=1), window) == j1
            assert refresh_families.rotate(db, "f", "j0", j2, now + window, window) is None
            assert refresh_families.rotate(db, "f", "j1", j2, now + window, window) is None
            with db.read() as cur:
                positions = {
                    row["projection"]: row["position"]
                    for row in cur.execute("SELECT projection, position FROM projection_tracking").fetchall()
                }
                assert cur.execute("SELECT COUNT(*) AS n FROM users").fetchone() == {"n": 0}
            assert positions == {"accounts": 0, "listings": 0, "portfolio": 0, "notifications": 0, "orders": 42}

            with db.transaction(write=True) as cur:
                a_user(cur)
            migrate(db)  # a database that has them is left as it is
            with db.read() as cur:
                assert cur.execute("SELECT COUNT(*) AS n FROM users").fetchone() == {"n": 1}
        finally:
            db.close()


def test_notifications_keep_their_live_order_from_a_database_made_before_notification_seqs(
    backend: str, tmp_path: Path
) -> None:
    """There `notifications.seq` alone held the order clients were served in; the rewind that gives
    `notification_orders` its parties empties it, and the replay must give every id its old seq back."""
    live = {49: 1, 73: 2, 50: 3, 89: 4}  # an order's notifications and a chat's, interleaved as served
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            migrate(db)
            with db.transaction(write=True) as cur:
                cur.execute("DROP TABLE notification_seqs")
                for column in ("buyer_id", "creator_id"):
                    cur.execute(f"ALTER TABLE notification_orders DROP COLUMN {column}")
                for notification, seq in live.items():
                    _store_notification(cur, notification, seq, notification // 8, read=False)

            migrate(db)
            migrate(db)  # and again: nothing more to carry over

            with db.read() as cur:
                kept = {
                    row["id"]: row["seq"] for row in cur.execute("SELECT id, seq FROM notification_seqs").fetchall()
                }
                assert cur.execute("SELECT COUNT(*) AS n FROM notifications").fetchone() == {"n": 0}  # rewound
            assert kept == live
        finally:
            db.close()


def test_notifications_are_counted_once_in_a_database_made_before_notification_counts(
    backend: str, tmp_path: Path
) -> None:
    """Its notifications stay where they are (no rewind): their users' counts are counted from them
    once, and a page's `count` and the unread count read those."""
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            migrate(db)
            with db.transaction(write=True) as cur:
                cur.execute("DROP TABLE notification_counts")
                for seq, (user, read) in enumerate([(7, False), (7, True), (7, False), (8, True)], 1):
                    cur.execute(
                        "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, "
                        "is_read, created_at) VALUES (%s, %s, %s, 'orders', %s, 'new_order', 'm', %s, %s, %s)",
                        (seq * 8 + 1, seq, user, seq, "{}", read, NOW),
                    )

            migrate(db)
            migrate(db)  # and again: counted once

            first = PageRequest(number=1, size=2)
            assert [read_page(db, list_notifications(7, first, read=read)).count for read in (None, True, False)] == [
                3,
                1,
                2,
            ]
            assert [read_page(db, list_notifications(8, first, read=read)).count for read in (None, True, False)] == [
                1,
                1,
                0,
            ]
            assert (unread_count(db, 7), unread_count(db, 8), unread_count(db, 9)) == (2, 0, 0)
        finally:
            db.close()


def a_user(cur: Cursor) -> None:
    cur.execute(
        "INSERT INTO users (id, uuid, username, email, first_name, last_name, is_verified, roles, date_joined) "
        "VALUES (1, 'u-1', 'anna', 'anna@example.com', 'Анна', '', %s, %s, %s)",
        (True, [], NOW),
    )


def _index_query(cur: Cursor, name: str) -> tuple[str, tuple[str]]:
    if cur.dialect == "postgresql":
        return "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s", (name,)
    return "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = %s", (name,)


def test_a_database_made_before_marks_were_read_at_read_time_gets_their_index_and_reads_the_same(
    backend: str, tmp_path: Path
) -> None:
    """There a mark of all read had rewritten the rows it covered (`is_read` true): `ugc migrate` adds
    the index that counts the rows past a mark and leaves the rows as they are, which read as before
    (their projection's new version has the runner rebuild them, blue/green, the new way)."""
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            migrate(db)
            with db.transaction(write=True) as cur:
                cur.execute("DROP INDEX notifications_user_source_read")
                for seq, read in enumerate([True, True, False], 1):  # two covered by the mark, one after it
                    _store_notification(cur, seq * 8 + 1, seq, seq, read=read)
                cur.execute("INSERT INTO notification_read_marks (user_id, source, up_to) VALUES (7, 'orders', 2)")
                cur.execute("INSERT INTO notification_counts (user_id, total, unread) VALUES (7, 3, 1)")

            migrate(db)

            with db.read() as cur:
                assert cur.execute(*_index_query(cur, "notifications_user_source_read")).fetchone() is not None
            page = read_page(db, list_notifications(7, PageRequest(number=1, size=10), read=None))
            assert [(row["id"], bool(row["is_read"])) for row in page.rows] == [(25, False), (17, True), (9, True)]
            unread = read_page(db, list_notifications(7, PageRequest(number=1, size=10), read=False))
            assert [row["id"] for row in unread.rows] == [25] and unread.count == unread_count(db, 7) == 1
        finally:
            db.close()


def _store_notification(cur: Cursor, notification: int, seq: int, position: int, *, read: bool) -> None:
    """A `new_order` notification of user 7 from the orders log, written as an older version stored it."""
    cur.execute(
        "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, "
        "is_read, created_at) VALUES (%s, %s, 7, 'orders', %s, 'new_order', 'm', %s, %s, %s)",
        (notification, seq, position, "{}", read, NOW),
    )
