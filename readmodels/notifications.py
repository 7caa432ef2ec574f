"""Notifications (kept by `projections/notifications.py`).

`id` comes from the event's place in its log (see `ugc/notifications.py`); `seq` is the order in
which the projection first stored notifications, across applications, which is what a socket's
`?since=` replays by. The first seq of each id is kept in `notification_seqs`, which a rebuild does
not empty: the two logs are read in another interleaving then, and a client resuming with
`since=` must find the same order it was served live. Marks of what was read are kept apart from
the rows they mark, so a mark applied before its notification arrived (a rebuild reads the two
logs in batches) still counts.

Whether a notification is read is decided when it is read (`read_state`): its row's `is_read` says
only that it was marked read by itself (`notification_reads`); a "mark all read" is one row of
`notification_read_marks` per log (`up_to`), which covers every notification of that log up to its
position, stored before it or after. Marking all read then writes the marks and the user's counts,
whatever the user has, where rewriting the rows it covered took 2.2 s for 100,000 on PostgreSQL.
What each row stores does not depend on the order the projection met marks and notifications in,
so a rebuild stores what the live projection did.

Each user's counts (all their notifications, the unread ones) are kept in `notification_counts` by
the projection, in the transaction that writes the rows they count: a page or a badge reads one
row, where a COUNT read every row of the user's (14-46 ms for 56,022). A replay keeps them the
same way, so a rebuilt table counts what the live one does.
"""

from __future__ import annotations

from readmodels.pages import REPLAY_CHUNK, PageQuery, PageRequest, Query
from ugc.notifications import SOURCES
from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS notifications (
        id BIGINT PRIMARY KEY,
        seq BIGINT NOT NULL,
        user_id BIGINT NOT NULL,
        source TEXT NOT NULL,
        position BIGINT NOT NULL,
        type TEXT NOT NULL,
        message TEXT NOT NULL,
        data {json} NOT NULL,
        is_read {bool} NOT NULL,
        created_at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user_id, seq)",
    # Every read of notifications is one user's, in `seq` order: an index of `seq` alone is what a
    # planner expecting many rows of the user walks, past every other user's row stored after the
    # user's newest (25,020 rows for a page of 20 on PostgreSQL). A seq is unique by
    # `notification_seqs`, whence every row takes its own. Databases from before kept the unique
    # constraint's index (SQLite's cannot be dropped, and its planner takes the user's index).
    {"postgresql": "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_seq_key"},
    "CREATE INDEX IF NOT EXISTS notifications_user_read ON notifications (user_id, is_read, seq)",
    # A user's rows of one log not marked read by themselves, in log order: what a new mark leaves
    # unread is counted from those past it, and a page of read ones walks those it covers.
    "CREATE INDEX IF NOT EXISTS notifications_user_source_read ON notifications (user_id, source, is_read, position)",
    "DROP INDEX IF EXISTS notifications_user_source",  # the same without `is_read`
    """CREATE TABLE IF NOT EXISTS notification_seqs (
        id BIGINT PRIMARY KEY,
        seq BIGINT NOT NULL UNIQUE)""",
    """CREATE TABLE IF NOT EXISTS notification_orders (
        order_uuid TEXT PRIMARY KEY,
        order_id BIGINT NOT NULL,
        buyer_id BIGINT NOT NULL,
        creator_id BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS notification_reads (
        user_id BIGINT NOT NULL,
        notification_id BIGINT NOT NULL,
        PRIMARY KEY (user_id, notification_id))""",
    """CREATE TABLE IF NOT EXISTS notification_read_marks (
        user_id BIGINT NOT NULL,
        source TEXT NOT NULL,
        up_to BIGINT NOT NULL,
        PRIMARY KEY (user_id, source))""",
    """CREATE TABLE IF NOT EXISTS notification_counts (
        user_id BIGINT PRIMARY KEY,
        total BIGINT NOT NULL,
        unread BIGINT NOT NULL)""",
)


def read_state(row: str) -> str:
    """Whether the notification `row` (a table name or alias) is read: marked read by itself, or
    covered by its user's mark of all read for its log. For rows of any users: the mark is a keyed
    lookup per row, written as a scalar subquery (an EXISTS may be planned as a hash of the whole
    marks table: see `projections.notifications.INSERT_NOTIFICATIONS`)."""
    return (
        f"({row}.is_read OR {row}.position <= COALESCE((SELECT m.up_to FROM notification_read_marks m "
        f"WHERE m.user_id = {row}.user_id AND m.source = {row}.source), 0))"
    )


# `read_state` of one user's rows, whose marks are read once for the statement (one InitPlan per log,
# each taking the user's id): a row costs a comparison, not a lookup, which a page's OFFSET and a
# filtered scan pay on every row they pass.
_MARKED_UP_TO = " ".join(
    f"WHEN '{source}' THEN COALESCE((SELECT up_to FROM notification_read_marks "
    f"WHERE user_id = %s AND source = '{source}'), 0)"
    for source in SOURCES
)
USER_READ_STATE = f"(is_read OR position <= CASE source {_MARKED_UP_TO} ELSE 0 END)"


def user_read_params(user_id: int) -> list[object]:
    """The parameters of one `USER_READ_STATE`."""
    return [user_id] * len(SOURCES)


def _columns(is_read: str) -> str:
    return f"id, seq, type, message, data, {is_read} AS is_read, created_at"


COLUMNS = _columns(USER_READ_STATE)  # then `user_read_params`

# A database from before `notification_seqs` kept the live order in `notifications.seq` alone: carried
# over at migration, before anything empties the table, so that its clients resume where they were.
# Every notification stored since has its row in `notification_seqs`, which is never empty then.
KEEP_LIVE_ORDER = (
    "INSERT INTO notification_seqs (id, seq) SELECT id, seq FROM notifications "
    "WHERE NOT EXISTS (SELECT 1 FROM notification_seqs)"
)

# A database from before `notification_counts` has its notifications but no counts: they are counted
# once at migration. Every notification stored since is counted with it, so the table is never empty
# while `notifications` is not.
COUNT_EXISTING = (
    "INSERT INTO notification_counts (user_id, total, unread) "
    f"SELECT user_id, COUNT(*), SUM(CASE WHEN {read_state('notifications')} THEN 0 ELSE 1 END) FROM notifications "
    "WHERE NOT EXISTS (SELECT 1 FROM notification_counts) GROUP BY user_id"
)

# What a page's `count` counts, by its `read` filter: all, the read ones, the unread ones.
_COUNTED = {None: "total", True: "total - unread", False: "unread"}


# The rows of a page by its `read` filter (None: all, False: the unread ones), each followed by
# `user_read_params` but the first. The unread ones are among the rows not marked read by themselves
# (`notifications_user_read`).
_FILTERED = {None: "", False: f" AND is_read = FALSE AND NOT {USER_READ_STATE}"}


def _read_rows(user_id: int, wanted: int) -> Query:
    """The user's read rows, newest first: those marked read by themselves, one range of
    `notifications_user_read`, and per log the others its mark of all read covers, one range of
    `notifications_user_source_read` (newest first by `position`, as by `seq`: the rows of one log are
    stored in its order). Each range is cut to the `wanted` rows a page can need and the union of
    the ranges, which share no row, sorted. A walk of the user's rows newest first, filtering by
    read state, passed every unread row above the read ones (100,000 unread above a mark of 5 on
    PostgreSQL: 100,000 rows, 24 ms). Every row here is read: no mark to look up per row."""
    columns = _columns("TRUE")
    covered = [
        f"SELECT * FROM (SELECT {columns} FROM notifications WHERE user_id = %s AND source = '{source}' "
        "AND is_read = FALSE AND position <= COALESCE((SELECT up_to FROM notification_read_marks "
        f"WHERE user_id = %s AND source = '{source}'), 0) ORDER BY position DESC, seq DESC LIMIT %s) AS {source}"
        for source in SOURCES
    ]
    marked = (
        f"SELECT * FROM (SELECT {columns} FROM notifications WHERE user_id = %s AND is_read = TRUE "
        "ORDER BY seq DESC LIMIT %s) AS marked"
    )
    return (
        f"SELECT * FROM ({' UNION ALL '.join([marked, *covered])}) AS read_rows ORDER BY seq DESC",
        [user_id, wanted, *[value for _ in SOURCES for value in (user_id, user_id, wanted)]],
    )


def list_notifications(user_id: int, page: PageRequest, *, read: bool | None) -> PageQuery:
    """The user's notifications, newest first, optionally only the read or the unread ones.

    A filtered page stops at its count: the read state is no column an index can skip by, and
    without the count a page of unread ones after a mark of all would read on through every row
    the mark covers, looking for more."""
    if read is True:
        rows = _read_rows(user_id, page.offset + page.size)
    else:
        rows = (
            f"SELECT {COLUMNS} FROM notifications WHERE user_id = %s{_FILTERED[read]} ORDER BY seq DESC",
            [*user_read_params(user_id), user_id, *([] if read is None else user_read_params(user_id))],
        )
    return PageQuery(
        page,
        (f"SELECT {_COUNTED[read]} AS n FROM notification_counts WHERE user_id = %s", [user_id]),
        rows,
        stops_at_count=read is not None,
    )


def get_notification(db: Database, user_id: int, notification_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM notifications WHERE id = %s AND user_id = %s",
            (*user_read_params(user_id), notification_id, user_id),
        ).fetchone()


def unread_count(db: Database, user_id: int) -> int:
    with db.read() as cur:
        row = cur.execute("SELECT unread FROM notification_counts WHERE user_id = %s", (user_id,)).fetchone()
    return int(row["unread"]) if row else 0


def seq_of(db: Database, user_id: int, notification_id: int) -> int | None:
    """Where the user's notification `notification_id` sits in store order (None: not theirs or unknown)."""
    with db.read() as cur:
        row = cur.execute(
            "SELECT seq FROM notifications WHERE id = %s AND user_id = %s", (notification_id, user_id)
        ).fetchone()
    return int(row["seq"]) if row else None


def last_seq(db: Database, user_id: int) -> int:
    """Where the user's newest notification sits in store order (0 before the first)."""
    with db.read() as cur:
        row = cur.execute("SELECT max(seq) AS seq FROM notifications WHERE user_id = %s", (user_id,)).fetchone()
    return int(row["seq"]) if row and row["seq"] is not None else 0


# A user's notifications stored after a seq, oldest first, so many of them: `user_read_params`, the
# user, the seq, the limit.
STORED_AFTER = f"SELECT {COLUMNS} FROM notifications WHERE user_id = %s AND seq > %s ORDER BY seq LIMIT %s"


def stored_after(db: Database, user_id: int, seq: int, limit: int = REPLAY_CHUNK) -> list[Row]:
    """The user's notifications stored after `seq`, oldest first, at most `limit` of them."""
    with db.read() as cur:
        return cur.execute(STORED_AFTER, (*user_read_params(user_id), user_id, seq, limit)).fetchall()
