"""What a page of notifications and a `since=` resume read, whoever else has notifications: the
rows of the user's that they show, however many of other users' were stored after them.
The rows are stored by hand: it is the reads that are tested."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from readmodels.notifications import STORED_AFTER, list_notifications, user_read_params
from readmodels.pages import PageRequest, read_page
from tests.backends import fresh_database
from tests.plans import Statement, stored_by_hand, work
from ugc.platform.database import Database
from ugc.wiring import migrate

OLD, NEW = 1, 2  # users whose 5,000 notifications are the first stored, or the last
OTHERS = 20_000  # notifications of 100 other users stored between them


def reads(user: int) -> list[Statement]:
    """A user's first page (all, and the unread ones) and a resume from before their first notification."""
    pages = [list_notifications(user, PageRequest(1, 20), read=read).statements[1] for read in (None, False)]
    return [*pages, (STORED_AFTER, [*user_read_params(user), user, 0, 20])]


def test_a_users_page_reads_their_rows_not_the_others_stored_after_them(backend: str, tmp_path: Path) -> None:
    """A user whose 5,000 notifications are older than 20,000 of other users' reads a page (all, unread)
    and a `since=` resume as one whose notifications are the newest. On PostgreSQL their pages walked
    the index of `seq` alone (the planner counting on a sixth of its rows being theirs) past every
    row stored after their newest, and the newest user's resume every row before their first:
    25,020 rows for 20."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        db = Database(url)
        try:
            if backend == "postgres":  # a database from before: `ugc migrate` drops the index of `seq` alone
                with db.transaction(write=True) as cur:
                    cur.execute("ALTER TABLE notifications ADD CONSTRAINT notifications_seq_key UNIQUE (seq)")
                migrate(db)
            with db.transaction(write=True) as cur:
                cur.execute(
                    "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < %s) "
                    "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, is_read, "
                    "created_at) SELECT n, n, CASE WHEN n <= 5000 THEN %s WHEN n > %s THEN %s ELSE 100 + n / 200 END, "
                    "'messaging', n, 'new_message', '…', %s, FALSE, %s FROM numbers",
                    (OTHERS + 10_000, OLD, OTHERS + 5000, NEW, {}, datetime.now(UTC)),
                )
                cur.execute(
                    "INSERT INTO notification_counts SELECT user_id, COUNT(*), COUNT(*) FROM notifications "
                    "GROUP BY user_id"
                )
                cur.execute("ANALYZE")
            page = list_notifications(OLD, PageRequest(1, 20), read=None)
            with db.read() as cur:
                shown = cur.execute(*page.statements[1]).fetchall()
            assert [int(row["id"]) for row in shown] == list(range(5000, 4980, -1))
        finally:
            db.close()
        old, new = ([work(url, [read], "notifications") for read in reads(user)] for user in (OLD, NEW))
        assert all(o <= 2 * n for o, n in zip(old, new, strict=True)), (old, new)


def test_a_read_page_of_a_user_with_a_mark_reads_the_read_rows_not_the_unread_above_them(
    backend: str, tmp_path: Path
) -> None:
    """A user who marked all read over 5 notifications, then got 3,000 more, one of them read by itself:
    a `read=true` page shows those 6, and reads no more than the first page of all 20 does. It walked
    the user's rows newest first, past every unread one above the mark (on PostgreSQL 100,000 rows,
    24 ms, for 5 shown)."""
    with stored_by_hand(
        backend,
        tmp_path,
        (
            "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 3005) "
            "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, is_read, "
            "created_at) SELECT n, n, %s, 'messaging', n, 'new_message', '…', %s, n = 3000, %s FROM numbers",
            (OLD, {}, datetime.now(UTC)),
        ),
        ("INSERT INTO notification_read_marks VALUES (%s, 'messaging', 5)", (OLD,)),
        ("INSERT INTO notification_counts VALUES (%s, 3005, 2999)", (OLD,)),
    ) as db:
        query = list_notifications(OLD, PageRequest(1, 20), read=True)
        page = read_page(db, query)
        assert [int(row["id"]) for row in page.rows] == [3000, 5, 4, 3, 2, 1] and all(r["is_read"] for r in page.rows)
        assert page.count == 6
        everything = list_notifications(OLD, PageRequest(1, 20), read=None)
        statements = query.statements[1:], everything.statements[1:]
        assert work(db.url, statements[0], "notifications") <= work(db.url, statements[1], "notifications")
