"""The notifications and messaging projections: rebuilds give the same rows, pushes follow commits.

Given events written straight to the stores (no live runner), the projections are run by the
test: in tiny batches, so the two logs interleave and a read mark can arrive before the
notification it marks, and in one big pass; both must end in the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from commands.messaging import MessagingCommands
from commands.notifications import NotificationCommands
from commands.saving import save
from commands.standing import Standings
from projections.messaging import MessagingProjection
from projections.notifications import HELD_COLUMNS, NotificationsProjection, stored_and_inserted
from projections.runner import ProjectionRunner
from readmodels.notifications import read_state
from readmodels.waiting import Progress
from tests.backends import DATA_KEY, fresh_database
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.messaging import Conversation, read_marker_id
from ugc.notifications import inbox_id, notification_id, notification_source
from ugc.orders import Order
from ugc.platform.database import Database
from ugc.platform.push import RESYNC, Push
from ugc.platform.store import EventStores
from ugc.wiring import migrate

CREATOR, BUYER, FRIEND = 9001, 9002, 9003


class Recording:
    """A publisher that keeps what it is handed."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []

    def publish(self, pushes: Sequence[Push]) -> None:
        self.pushes.extend(pushes)

    @property
    def resyncs(self) -> int:
        return sum(1 for push in self.pushes if push == RESYNC)


@dataclass
class World:
    db: Database
    stores: EventStores
    clock: MovableClock
    notifications: NotificationCommands
    messaging: MessagingCommands


@contextmanager
def a_world(url: str) -> Iterator[World]:
    db = Database(url)
    migrate(db)
    stores = EventStores(url, data_key=DATA_KEY)
    clock = MovableClock(datetime(2026, 5, 1, 12, tzinfo=UTC))
    try:
        yield World(
            db,
            stores,
            clock,
            NotificationCommands(stores, clock),
            MessagingCommands(stores, db, clock, Standings(stores, clock)),
        )
    finally:
        stores.close()
        db.close()


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    with a_world(settings.database_url) as world:
        yield world


def placed(world: World, number: int) -> Order:
    return Order.place(
        number=number,
        buyer=BUYER,
        buyer_username="buyer",
        creator=CREATOR,
        creator_profile=1,
        creator_username="creator",
        service=1,
        service_title="Обзор",
        price=Decimal("100"),
        options=[],
        total_price=Decimal("100"),
        requirements="",
        delivery_date="2026-06-01",
        allows_modifications=True,
        at=world.clock.now(),
    )


def a_chat(world: World, number: int, starter: int, recipient: int) -> Conversation:
    """A conversation between two of the world's users, stored."""
    names = {BUYER: "buyer", FRIEND: "friend"}
    chat = Conversation.start(
        number=number,
        starter=starter,
        starter_username=names[starter],
        recipient=recipient,
        recipient_username=names[recipient],
        at=world.clock.now(),
    )
    save(world.stores.messaging, chat)
    return chat


def table(db: Database, name: str, *, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    with db.transaction() as cur:
        rows = cur.execute(f"SELECT * FROM {name}").fetchall()
    return sorted(({k: v for k, v in row.items() if k not in without} for row in rows), key=repr)


def write_history(world: World, base: int) -> None:
    """Orders and a chat between the buyer and a friend; read marks that point at later events."""
    orders = world.stores.orders
    first = placed(world, base)
    first_position = save(orders, first)["orders"]
    for offset in range(1, 4):
        world.clock.advance(timedelta(minutes=1))
        order = placed(world, base + offset)
        save(orders, order)
        order.accept(CREATOR, world.clock.now())
        order.deliver(CREATOR, base + offset, "Готово", [], world.clock.now())
        save(orders, order)
    last = placed(world, base + 9)
    last_position = save(orders, last)["orders"]
    # The creator reads the newest order's notification before anything else lands in messaging,
    # so a tiny-batch run meets the mark long before the notification itself.
    world.notifications.mark_read(CREATOR, notification_id("orders", last_position))
    messaging = world.stores.messaging
    chat = a_chat(world, base, BUYER, FRIEND)
    for n in range(4):
        save(
            messaging, chat.send(number=base + n, sender=BUYER if n % 2 else FRIEND, text=f"№{n}", at=world.clock.now())
        )
    world.notifications.mark_all_read(BUYER)
    world.messaging.mark_read(base, FRIEND)
    world.notifications.mark_read(CREATOR, notification_id("orders", first_position))
    last.cancel(BUYER, "Передумал", world.clock.now())
    save(orders, last)
    save(messaging, chat.send(number=base + 7, sender=BUYER, text="Ещё", at=world.clock.now()))


def rebuild(world: World, batch_size: int, publisher: Recording | None = None) -> dict[str, list[dict[str, Any]]]:
    projections = [MessagingProjection(publisher), NotificationsProjection(publisher)]
    runner = ProjectionRunner(world.db, world.stores, projections, Progress(), batch_size=batch_size)
    runner.register()
    for projection in projections:
        runner.reset(projection)
        runner.catch_up([projection])
    return {
        # `seq` is the order of storing across two logs, which the batch size may change.
        "notifications": shown(world.db),
        **{
            name: table(world.db, name)
            for name in ("notification_reads", "notification_read_marks", "notification_counts")
        },
        **{name: table(world.db, name) for name in ("conversations", "messages")},
    }


def shown(db: Database) -> list[dict[str, Any]]:
    """Every notification's row (but its `seq`) with `shown_read`, whether readers see it read."""
    with db.transaction() as cur:
        rows = cur.execute(f"SELECT n.*, {read_state('n')} AS shown_read FROM notifications n").fetchall()
    return sorted(
        ({**{k: v for k, v in row.items() if k != "seq"}, "shown_read": bool(row["shown_read"])} for row in rows),
        key=repr,
    )


def counted(db: Database) -> list[dict[str, Any]]:
    """What `notification_counts` should hold: every user's rows counted, and those readers see unread."""
    with db.transaction() as cur:
        rows = cur.execute(
            f"SELECT user_id, COUNT(*) AS total, SUM(CASE WHEN {read_state('n')} THEN 0 ELSE 1 END) AS unread "
            "FROM notifications n GROUP BY user_id"
        ).fetchall()
    return sorted(({k: int(v) for k, v in row.items()} for row in rows), key=repr)


def counts(db: Database) -> list[dict[str, Any]]:
    return sorted(({k: int(v) for k, v in row.items()} for row in table(db, "notification_counts")), key=repr)


def test_tiny_and_big_batches_store_the_same_rows(world: World) -> None:
    write_history(world, 100)
    small = rebuild(world, batch_size=2)
    big = rebuild(world, batch_size=500)
    assert small == big
    notifications = {(n["user_id"], n["type"]): n for n in small["notifications"]}
    # The mark that came first in tiny batches still holds; the buyer's mark-all covers the chat.
    assert notifications[(CREATOR, "order_cancelled")]["shown_read"] is False
    creator_new_orders = [n for n in small["notifications"] if n["user_id"] == CREATOR and n["type"] == "new_order"]
    assert sum(n["shown_read"] for n in creator_new_orders) == 2 and len(creator_new_orders) == 5
    buyer_rows = [n for n in small["notifications"] if n["user_id"] == BUYER]
    assert buyer_rows and all(n["shown_read"] for n in buyer_rows if n["type"] == "new_message")
    assert any(not n["shown_read"] for n in small["notifications"] if n["user_id"] == FRIEND)


def test_each_users_counts_are_their_rows_counted_live_at_every_step_and_rebuilt(world: World) -> None:
    """Applied live event by event (new notifications, single marks met before and after their
    notification, marks of all, a mark repeated), the counts equal a COUNT of the rows after every
    batch; rebuilt in tiny batches (the two logs read in another interleaving) they are the same."""
    notifications = NotificationsProjection()
    runner = ProjectionRunner(world.db, world.stores, [notifications], Progress(), batch_size=1)
    runner.register()
    runner.catch_up()  # whatever earlier tests left
    write_history(world, 1300)
    world.notifications.mark_all_read(CREATOR)
    world.notifications.mark_all_read(CREATOR)
    steps = 0
    while runner.run_once(notifications):
        steps += 1
        assert counts(world.db) == counted(world.db), f"after batch {steps}"
    assert steps >= 10  # a batch of one event from each log
    live = counts(world.db)
    assert {row["user_id"] for row in live} == {BUYER, CREATOR, FRIEND}
    assert any(row["unread"] for row in live) and any(row["unread"] < row["total"] for row in live)
    for batch_size in (2, 500):
        assert rebuild(world, batch_size=batch_size)["notification_counts"] == table(world.db, "notification_counts")
        assert counts(world.db) == live


def test_a_projection_after_a_restart_finds_the_order_numbers_it_did_not_see_placed(world: World) -> None:
    write_history(world, 500)
    remembered = rebuild(world, batch_size=500)["notifications"]
    first = NotificationsProjection()
    ProjectionRunner(world.db, world.stores, [first], Progress()).reset(first)
    while True:  # every batch of three by a new process, which knows no order numbers
        fresh = NotificationsProjection()
        if not ProjectionRunner(world.db, world.stores, [fresh], Progress(), batch_size=3).run_once(fresh):
            break
    assert shown(world.db) == remembered


def test_a_process_that_did_not_see_the_orders_placed_reads_their_parties_once_a_batch(
    backend: str, tmp_path: Path, statements: list[str]
) -> None:
    """An order's next step often comes long after the projection saw it placed, or in a process
    started since: the batch reads the parties of all such orders in one statement, not one each."""
    with fresh_database(backend, tmp_path, migrated=True) as url, a_world(url) as world:
        orders = [placed(world, n) for n in range(1, 21)]
        for order in orders:
            save(world.stores.orders, order)
        seen_placed = NotificationsProjection()
        first = ProjectionRunner(world.db, world.stores, [seen_placed], Progress())
        first.register()
        first.catch_up([seen_placed])
        for order in orders:
            order.deliver(CREATOR, order.number, "Готово", [], world.clock.now())
            save(world.stores.orders, order)
        statements.clear()
        restarted = NotificationsProjection()  # a new process: it knows no order
        runner = ProjectionRunner(world.db, world.stores, [restarted], Progress(), batch_size=500)
        assert runner.run_once(restarted, ["orders"]) == len(orders)
        lookups = [sql for sql in statements if "FROM notification_orders" in sql]
        assert len(lookups) == 1, lookups
        delivered = [n for n in shown(world.db) if n["type"] == "order_delivered"]
        assert sorted(n["data"]["order_id"] for n in delivered) == [order.number for order in orders]
        assert all(n["user_id"] == BUYER for n in delivered)
        live = shown(world.db)
        assert rebuild(world, batch_size=500)["notifications"] == live


def test_seq_keeps_each_logs_order(world: World) -> None:
    write_history(world, 200)
    rebuild(world, batch_size=3)
    with world.db.transaction() as cur:
        rows = cur.execute("SELECT source, position, seq FROM notifications ORDER BY seq").fetchall()
    # Unique; not gapless: a rebuild's batch that meets ids seen before leaves their places unused.
    assert len({r["seq"] for r in rows}) == len(rows)
    for source in ("orders", "messaging"):
        positions = [r["position"] for r in rows if r["source"] == source]
        assert positions == sorted(positions) and positions


def test_a_batch_of_seen_and_new_notifications_keeps_the_old_seqs_and_numbers_the_new_in_one_statement(
    world: World, backend: str, statements: list[str]
) -> None:
    write_history(world, 1000)
    rebuild(world, batch_size=500)
    kept = {row["id"]: row["seq"] for row in table(world.db, "notifications")}
    write_history(world, 1100)  # notifications never stored yet, after the ones the rebuild meets again
    statements.clear()  # only the batch's
    projection = NotificationsProjection()
    runner = ProjectionRunner(world.db, world.stores, [projection], Progress(), batch_size=500)
    runner.reset(projection)  # keeps notification_seqs, as a rebuild does
    runner.run_once(projection, ["orders"])  # the whole orders log: one batch
    writes = [sql for sql in statements if "INSERT INTO notification" in sql and "notification_orders" not in sql]
    assert len(writes) == (1 if backend == "postgres" else 3)  # SQLite: seqs, rows, counts
    rows = sorted(table(world.db, "notifications"), key=lambda row: row["position"])
    old = [row for row in rows if row["id"] in kept]
    new = [row for row in rows if row["id"] not in kept]
    assert old and new
    assert all(row["seq"] == kept[row["id"]] for row in old)
    # The new ones follow every seq given so far, in the order of their log.
    assert [row["seq"] for row in new] == sorted(row["seq"] for row in new)
    assert new[0]["seq"] > max(kept.values()) and len({row["seq"] for row in rows}) == len(rows)


def test_pushes_follow_commits_and_a_rolled_back_batch_pushes_nothing(world: World) -> None:
    write_history(world, 300)
    recording = Recording()
    rebuild(world, batch_size=500, publisher=recording)
    with world.db.transaction() as cur:
        stored = cur.execute("SELECT id, seq, user_id FROM notifications ORDER BY seq").fetchall()
        messages = cur.execute("SELECT id FROM messages").fetchall()
    notified = [p for p in recording.pushes if p.kind == "notification"]
    # A rebuild pushes in its own reading order; each push carries the seq its notification keeps.
    assert sorted(((p.row["id"], p.seq, p.to) for p in notified), key=lambda pushed: pushed[1]) == [
        (r["id"], r["seq"], f"user:{r['user_id']}") for r in stored
    ]
    assert sorted(p.row["id"] for p in recording.pushes if p.kind == "message") == sorted(r["id"] for r in messages)

    class Failing(NotificationsProjection):
        """Fails once the batch's notifications are written, what their pushes are built from held
        for the commit."""

        def before_commit(self, cur: Any) -> None:
            super().before_commit(cur)
            assert self._unpushed
            raise RuntimeError("injected")

    failing_recording = Recording()
    failing = Failing(failing_recording)
    runner = ProjectionRunner(world.db, world.stores, [failing], Progress(), batch_size=500)
    runner.reset(failing)
    with pytest.raises(RuntimeError, match="injected"):
        runner.run_once(failing)
    assert failing_recording.pushes == []
    assert table(world.db, "notifications") == []


def test_a_runner_whose_positions_another_process_moved_on_has_the_sockets_read_again(world: World) -> None:
    """What another process applied (a rebuild's switch that moved the positions to the head) was
    stored but pushed by no one: the runner finds its remembered positions moved, and before it goes
    on it has every notification socket read again what was stored after what it sent (RESYNC)."""
    recording = Recording()
    live = NotificationsProjection(recording)
    runner = ProjectionRunner(world.db, world.stores, [live], Progress(), batch_size=500)
    runner.register()
    runner.catch_up()  # whatever earlier tests left; the positions are now remembered
    elsewhere = ProjectionRunner(world.db, world.stores, [NotificationsProjection()], Progress(), batch_size=500)
    save(world.stores.orders, placed(world, 800))
    elsewhere.catch_up()  # stored, and pushed to no one
    assert recording.resyncs == 0
    save(world.stores.orders, placed(world, 801))
    runner.catch_up()
    assert recording.pushes[-2:-1] == [RESYNC] and recording.pushes[-1].row["data"] == {"order_id": 801}
    save(world.stores.orders, placed(world, 802))
    runner.catch_up()  # from its own positions again: no resync
    assert recording.resyncs == 1 and recording.pushes[-1].row["data"] == {"order_id": 802}


def test_read_markers_are_snapshotted_so_they_load_in_constant_time(world: World) -> None:
    messaging = world.stores.messaging
    chat = a_chat(world, 400, BUYER, FRIEND)
    for n in range(60):  # something new each time: marking again with nothing new records nothing
        save(messaging, chat.send(number=4000 + n, sender=BUYER, text=f"№{n}", at=world.clock.now()))
        world.messaging.mark_read(400, FRIEND)
        world.notifications.mark_all_read(FRIEND)
    assert messaging.snapshots is not None
    for aggregate_id in (read_marker_id(400, FRIEND), inbox_id(FRIEND)):
        snapshots = list(messaging.snapshots.get(aggregate_id))
        assert [s.originator_version for s in snapshots] == [50]
        assert messaging.repository.get(aggregate_id).version == 61


def test_since_resumes_exactly_after_a_rebuild_of_interleaved_logs(world: World) -> None:
    from readmodels.notifications import seq_of, stored_after

    notifications = NotificationsProjection()
    runner = ProjectionRunner(world.db, world.stores, [notifications], Progress(), batch_size=500)
    runner.register()
    runner.catch_up()  # whatever earlier tests left
    chat = a_chat(world, 700, FRIEND, BUYER)
    # Live: the two logs are applied as their events arrive, alternately.
    for n in range(4):
        world.clock.advance(timedelta(minutes=1))
        order = placed(world, 700 + n)
        save(world.stores.orders, order)
        order.accept(CREATOR, world.clock.now())
        save(world.stores.orders, order)
        runner.run_once(notifications, ["orders"])
        save(world.stores.messaging, chat.send(number=700 + n, sender=FRIEND, text=f"№{n}", at=world.clock.now()))
        runner.run_once(notifications, ["messaging"])
    runner.catch_up()
    live = {user: [int(r["id"]) for r in stored_after(world.db, user, 0, limit=10_000)] for user in (BUYER, CREATOR)}
    assert {"orders", "messaging"} <= {
        source for source, _, _ in (notification_source(i) or ("?", 0, 0) for i in live[BUYER][-8:])
    }

    # Rebuilt: the orders log is read first, then the messaging log.
    runner.reset(notifications)
    runner.catch_up()
    for user, seen_live in live.items():
        assert [int(r["id"]) for r in stored_after(world.db, user, 0, limit=10_000)] == seen_live
        for index, since in enumerate(seen_live):
            seq = seq_of(world.db, user, since)
            assert seq is not None
            resumed = [int(r["id"]) for r in stored_after(world.db, user, seq, limit=10_000)]
            assert resumed == seen_live[index + 1 :], f"resuming {user} after {since}"


def test_a_batch_looks_each_notifications_read_up_by_key_however_many_reads_came_after_its_plan(
    backend: str, tmp_path: Path
) -> None:
    """The batch statement's plan, made while nobody had read a notification one by one, still looks
    each held notification's read up by key after 50,000 reads: without autovacuum nothing re-plans a
    session's prepared statement. As an EXISTS it was a hash of the whole table, built every batch."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's plans; SQLite looks each read up by its primary key")
    data: dict[str, Any] = {}
    row = (notification_id("orders", 1), 1, BUYER, "orders", 1, "order_placed", "m", data, datetime.now(UTC))
    with fresh_database(backend, tmp_path, migrated=True) as url:
        db = Database(url)
        try:
            with db.read() as cur:
                [(entry, [rows])] = list(cur.rows("held", HELD_COLUMNS, [row]))
        finally:
            db.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE notification_reads SET (autovacuum_enabled = false)")
            conn.execute("SET plan_cache_mode = force_generic_plan")  # what the session settles on
            conn.execute(f"PREPARE batch (jsonb) AS {stored_and_inserted(entry).replace('%s', '$1')}")

            def buffers() -> int:
                """Buffers one batch of the held row touches, rolled back."""
                conn.execute("BEGIN")
                explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE batch ({})").format(
                    sql.Literal(rows)
                )
                found = conn.execute(explain).fetchone()
                conn.execute("ROLLBACK")
                assert found is not None
                plan = found[0][0]["Plan"]
                return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])

            before = buffers()
            conn.execute(
                "INSERT INTO notification_reads (user_id, notification_id) "
                "SELECT n % 500, n FROM generate_series(1, 50000) AS n"
            )
            after = buffers()
    assert after < before + 20, (before, after)
