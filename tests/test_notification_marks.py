"""A mark of all read is one row per log: no notification row is rewritten, whatever the user has,
and every reader (pages, their filters and counts, a notification alone, `since=` resumes, pushes)
shows the read state the write side decided, in any order of marks and notifications; a rebuild
stores what the live projection did.

The expected read state comes from the user's `NotificationsRead` aggregate: read one by one
(`marked`) or covered by a mark of all (`up_to`, per log).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from commands.saving import save
from projections.notifications import NotificationsProjection
from projections.runner import ProjectionRunner
from readmodels.notifications import get_notification, list_notifications, stored_after, unread_count
from readmodels.pages import PageRequest, read_page
from readmodels.waiting import Progress
from tests import test_projection_notifications
from tests.plans import stored_by_hand, work
from tests.test_projection_notifications import BUYER, CREATOR, FRIEND, Recording, World, a_chat, placed, table
from ugc.events import user_actor
from ugc.messaging import Conversation
from ugc.notifications import NotificationsRead, inbox_id, notification_id, notification_source

world = test_projection_notifications.world  # the fixture: migrated tables, the stores and a clock


def expected(world: World, user: int, ids: list[int]) -> dict[int, bool]:
    """Whether each of `ids` is read, as the user's marks on the write side say."""
    try:
        inbox: NotificationsRead = world.stores.messaging.repository.get(inbox_id(user))
    except Exception:  # no mark yet
        return dict.fromkeys(ids, False)
    read = {}
    for number in ids:
        source = notification_source(number)
        assert source is not None
        read[number] = number in inbox.marked or source[1] <= inbox.up_to.get(source[0], 0)
    return read


def pages(world: World, user: int, read: bool | None, size: int) -> tuple[list[dict[str, Any]], set[int]]:
    """Every row the list shows with the `read` filter, page by page, and the counts the pages gave."""
    rows: list[dict[str, Any]] = []
    counts = set()
    number = 1
    while True:
        page = read_page(world.db, list_notifications(user, PageRequest(number, size), read=read))
        counts.add(page.count)
        rows += page.rows
        if len(page.rows) < size:
            return rows, counts
        number += 1


def readers_agree(world: World, user: int, *, settled: bool = True) -> int:
    """Check that every reader of `user`'s notifications shows what the list shows, and (`settled`:
    the projection has applied the whole log) what the write side decided; their unread count."""
    everything, total = pages(world, user, None, 100)
    ids = [int(row["id"]) for row in everything]
    want = {int(row["id"]): bool(row["is_read"]) for row in everything}
    if settled:
        assert want == expected(world, user, ids)
    assert total == {len(ids)}
    unread = [number for number in ids if not want[number]]
    for size in (2, 100):  # a page that ends inside the rows, and one past them
        shown_unread, counted_unread = pages(world, user, False, size)
        assert [int(row["id"]) for row in shown_unread] == unread and counted_unread == {len(unread)}
        assert all(not row["is_read"] for row in shown_unread)
        shown_read, counted_read = pages(world, user, True, size)
        assert [int(row["id"]) for row in shown_read] == [n for n in ids if want[n]]
        assert counted_read == {len(ids) - len(unread)} and all(row["is_read"] for row in shown_read)
    assert unread_count(world.db, user) == len(unread)
    resumed = stored_after(world.db, user, 0, limit=10_000)
    assert {int(row["id"]): bool(row["is_read"]) for row in resumed} == want
    for number in ids:
        alone = get_notification(world.db, user, number)
        assert alone is not None and bool(alone["is_read"]) is want[number]
    return len(unread)


def live_runner(world: World, publisher: Recording | None = None) -> tuple[ProjectionRunner, NotificationsProjection]:
    notifications = NotificationsProjection(publisher)
    runner = ProjectionRunner(world.db, world.stores, [notifications], Progress(), batch_size=1)
    runner.register()
    runner.catch_up()  # whatever earlier tests left
    return runner, notifications


def chat_to(world: World, number: int, recipient: int, messages: int) -> Conversation:
    sender = BUYER if recipient == FRIEND else FRIEND
    chat = a_chat(world, number, sender, recipient)
    for n in range(messages):
        save(world.stores.messaging, chat.send(number=number * 1000 + n, sender=sender, text="…", at=world.clock.now()))
    return chat


def accepted(world: World, number: int) -> int:
    """An order the creator accepted: the id of the notification that tells its buyer (the orders log)."""
    order = placed(world, number)
    save(world.stores.orders, order)
    order.accept(CREATOR, world.clock.now())
    return notification_id("orders", save(world.stores.orders, order)["orders"])


def test_marking_all_read_rewrites_no_notification_row_whatever_the_user_has(
    world: World, backend: str, statements: list[str]
) -> None:
    """Before, the mark's batch rewrote every unread row it covered (2.2 s for 100,000 on PostgreSQL,
    past the command's read-your-writes wait): now it writes the marks and one count."""
    runner, _ = live_runner(world)
    chat_to(world, 2100, FRIEND, 300)
    runner.catch_up()
    assert readers_agree(world, FRIEND) >= 300
    versions = row_versions(world, backend)
    statements.clear()
    world.notifications.mark_all_read(FRIEND)
    runner.catch_up()
    assert row_versions(world, backend) == versions  # on PostgreSQL: no row has a new version
    assert [sql for sql in statements if "UPDATE notifications " in sql] == []
    assert readers_agree(world, FRIEND) == 0


def row_versions(world: World, backend: str) -> dict[int, str]:
    """Each notification row's version: its `xmin` on PostgreSQL (any UPDATE makes a new one); SQLite
    has none, and the statements say it there."""
    if backend != "postgres":
        return {}
    with world.db.read() as cur:
        rows = cur.execute("SELECT id, xmin::text AS version FROM notifications").fetchall()
    return {int(row["id"]): str(row["version"]) for row in rows}


def test_every_order_of_marks_and_notifications_keeps_readers_and_counts_with_the_write_side(world: World) -> None:
    """One by one then all, all then one (a mark that covers it), new notifications after a mark,
    marks met before the notifications they cover: after every batch of one event, every reader
    shows what the write side decided and the unread count is the rows counted; a rebuild, in tiny
    batches or one, stores the same rows."""
    recording = Recording()
    runner, notifications = live_runner(world, recording)

    def settled() -> int:
        while runner.run_once(notifications):
            readers_agree(world, BUYER, settled=False)
        return readers_agree(world, BUYER)

    first = [accepted(world, 2200 + n) for n in range(3)]
    chat = chat_to(world, 2200, BUYER, 3)
    unread = settled()
    assert unread >= 6
    world.notifications.mark_read(BUYER, first[0])
    assert settled() == unread - 1
    world.notifications.mark_all_read(BUYER)
    assert settled() == 0

    # A single mark of a notification the mark of all covers: the command records nothing; a log
    # from before marks were kept on the write side holds such an event, which takes nothing off.
    covered = first[1]
    world.notifications.mark_read(BUYER, covered)
    inbox: NotificationsRead = world.stores.messaging.repository.get(inbox_id(BUYER))
    inbox._read(BUYER, [covered], world.clock.now(), user_actor(BUYER))
    save(world.stores.messaging, inbox)
    assert settled() == 0

    world.clock.advance(timedelta(minutes=1))
    newer = [accepted(world, 2210 + n) for n in range(2)]
    for n in range(2):
        save(world.stores.messaging, chat.send(number=2210 + n, sender=FRIEND, text="Ещё", at=world.clock.now()))
    assert settled() == 4
    world.notifications.mark_read(BUYER, newer[0])
    assert settled() == 3

    # A mark met before the notification it covers: the orders log is applied after the mark.
    late = accepted(world, 2220)
    world.notifications.mark_all_read(BUYER)
    pushed = len(recording.pushes)
    while runner.run_once(notifications, ["messaging"]):
        readers_agree(world, BUYER, settled=False)
    assert settled() == 0
    late_pushes = [p for p in recording.pushes[pushed:] if p.kind == "notification" and p.row["id"] == late]
    assert [p.row["is_read"] for p in late_pushes] == [True]

    live = stored_tables(world)
    for batch_size in (2, 500):
        projection = NotificationsProjection()
        rebuilt = ProjectionRunner(world.db, world.stores, [projection], Progress(), batch_size=batch_size)
        rebuilt.reset(projection)
        rebuilt.catch_up([projection])
        assert stored_tables(world) == live
        assert readers_agree(world, BUYER) == 0


def stored_tables(world: World) -> dict[str, list[dict[str, Any]]]:
    """The notification tables as stored (`seq`, the order of storing across two logs, aside)."""
    return {
        "notifications": table(world.db, "notifications", without=("seq",)),
        **{
            name: table(world.db, name)
            for name in ("notification_reads", "notification_read_marks", "notification_counts")
        },
    }


def test_a_read_page_of_a_user_without_marks_reads_only_the_read_rows(backend: str, tmp_path: Path) -> None:
    """A `read=true` page of a user who never marked all, with 3,000 unread above 5 read one by one,
    reads those 5 rows (`notifications_user_read`): no more than the first page of all 20. A single
    statement for users with marks and without walked every unread row newest first down to them
    (22 ms for 100,000 on PostgreSQL, 0.06 when `is_read` alone said it). The rows are stored by
    hand: it is the read that is tested."""
    unread, read = 3000, 5
    with stored_by_hand(
        backend,
        tmp_path,
        (
            "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < %s) "
            "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, is_read, "
            "created_at) SELECT n, n, %s, 'messaging', n, 'new_message', '…', %s, n <= %s, %s FROM numbers",
            (unread + read, FRIEND, {}, read, datetime.now(UTC)),
        ),
        ("INSERT INTO notification_counts VALUES (%s, %s, %s)", (FRIEND, unread + read, unread)),
    ) as db:
        query = list_notifications(FRIEND, PageRequest(1, 20), read=True)
        page = read_page(db, query)
        assert [int(row["id"]) for row in page.rows] == [5, 4, 3, 2, 1] and all(row["is_read"] for row in page.rows)
        assert page.count == read
        everything = list_notifications(FRIEND, PageRequest(1, 20), read=None)
        statements = query.statements[1:], everything.statements[1:]
        assert work(db.url, statements[0], "notifications") <= work(db.url, statements[1], "notifications")
