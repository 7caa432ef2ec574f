"""Turns notifying events of the orders and messaging logs into `notifications`, and pushes them.

The type comes from `ugc.notifications.TYPES`; whom an event tells follows from who acted and, for
an order, from its parties (`ugc.notifications.recipients`, the parties kept in `notification_orders`
from its Placed event); the line shown comes from projections/notification_texts.py. A batch's
notifications are written together at its end (or before a read marker is applied), each with the
next `seq` of the table: store order. Each user's counts in `notification_counts` move in the same
transaction as the rows they count. A row's `is_read` holds only whether it was marked read by
itself; a mark of all read is stored as the mark alone (`readmodels.notifications.read_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from projections.base import Handler
from projections.held import HeldInserts, Insert, Writes
from projections.notification_texts import line
from projections.outbox import PushingProjection
from readmodels.notifications import read_state
from ugc.messaging import Message
from ugc.notifications import SOURCES, TYPES, NotificationsRead, Parties, acting_role, notification_id, recipients
from ugc.orders import Order
from ugc.platform.cache import LRU
from ugc.platform.dialect import Cursor, Dialect, Row
from ugc.platform.push import Publisher, Push, user_channel
from ugc.platform.store import Messaging, Orders

# An order's number and parties, from its Placed event: a batch's are written together.
ORDER_PARTIES = Insert(
    "notification_orders", {"order_uuid": "text", "order_id": "bigint", "buyer_id": "bigint", "creator_id": "bigint"}
)
ORDERS_KEPT = 5_000  # ~0.75 MB: the orders of the last minutes, whose lifecycles are still running


class NotificationsProjection(PushingProjection):
    name = "notifications"
    # 2: an order the scheduler completed tells its buyer too; 3: a row's `is_read` is only its own
    # mark (a mark of all read no longer rewrites the rows it covers)
    version = 3
    applications: ClassVar[tuple[str, ...]] = (Orders.name, Messaging.name)
    tables: ClassVar[tuple[str, ...]] = (
        "notifications",
        "notification_orders",
        "notification_reads",
        "notification_read_marks",
        "notification_counts",
    )

    def __init__(self, publisher: Publisher | None = None) -> None:
        super().__init__(publisher)
        self._held: list[_Pending] = []  # the batch's notifying events, not written yet
        # The batch's rows written, each run with what reads the statement's answer: pushed once committed.
        self._unpushed: list[tuple[list[tuple[Any, ...]], list[Callable[[], list[Row]]]]] = []
        self._parties = HeldInserts()  # the batch's new orders, written before one is looked up
        # Order uuid -> its number and parties, which never change: a lifecycle notification of a
        # recent order then needs no lookup (a statement whose answer the batch would wait for).
        self._orders = LRU[UUID, _Order](ORDERS_KEPT)

    def handlers(self) -> Mapping[type, Handler]:
        notifying: dict[type, Handler] = {
            event_class: partial(self.notify, Messaging.name if event_class is Message.Sent else Orders.name)
            for event_class in TYPES
        }
        return notifying | {NotificationsRead.Read: self.read, NotificationsRead.AllRead: self.all_read}

    def aborted(self) -> None:
        self._held.clear()
        self._parties.clear()
        self._unpushed.clear()
        super().aborted()

    def notify(self, source: str, cur: Cursor, e: Any) -> None:
        """Hold the notifications of `e` for the batch's end; an order's parties are filled in then
        if they are not kept here (`_resolved`)."""
        order = None if source == Messaging.name else self._kept_order(e)
        self._held.append(_Pending(source, self.position, e, order))

    def held_writes(self, dialect: Dialect) -> Sequence[Writes]:
        return (self._parties.taken(),)

    def before_commit(self, cur: Cursor) -> None:
        self._write_held(cur)

    def _kept_order(self, e: Any) -> _Order | None:
        """The number and parties of the order of `e`, if known here: from its Placed event (this one,
        whose parties are held for `notification_orders`, or one seen before), else None."""
        uuid = e.originator_id  # the UUID itself: its text is ~1 µs more an event, needed only to store it
        if isinstance(e, Order.Placed):
            order = _Order(e.number, Parties(buyer=e.buyer, creator=e.creator))
            self._parties.add(ORDER_PARTIES, (str(uuid), order.number, e.buyer, e.creator))
            self._orders.put(uuid, order)
            return order
        return self._orders.get(uuid)

    def _resolved(self, cur: Cursor, pending: Sequence[_Pending]) -> list[tuple[Any, ...]]:
        """The held rows of `pending` (HELD_COLUMNS), in order, with the parties of every order not
        kept here read in one statement: an order's next step often comes hours after the projection
        last saw it (or before this process started), and a lookup per event each waited for its answer.

        Plain tuples, built in one pass, each event's role found once: this runs for every event of
        the orders log, and the objects and repeated lookups it made cost as much as the rest of
        the batch's Python together (issue 14)."""
        unknown = {p.event.originator_id for p in pending if p.order is None and p.source == Orders.name}
        found = self._orders_of(cur, unknown) if unknown else {}
        rows: list[tuple[Any, ...]] = []
        for source, position, e, order in pending:
            if order is None and source == Orders.name:
                order = found[e.originator_id]
            parties = None if order is None else order.parties
            kind = TYPES[type(e)]
            role = acting_role(e, parties)
            text, data = line(kind, role, e), self._data(e, order)
            before = len(rows)  # each row's `ord`: its place in the batch, from 1
            rows.extend(
                (
                    notification_id(source, position, nth),
                    before + nth + 1,
                    user,
                    source,
                    position,
                    kind,
                    text,
                    data,
                    e.at,
                )
                for nth, user in enumerate(recipients(e, parties, role))
            )
        return rows

    def _orders_of(self, cur: Cursor, uuids: set[UUID]) -> dict[UUID, _Order]:
        """The number and parties of each order of `uuids`, from `notification_orders` (kept here too)."""
        self._parties.write(cur)  # those placed in the batch and not kept any more
        found: dict[UUID, _Order] = {}
        for entry, params in cur.rows("wanted", {"order_uuid": "text"}, [(str(uuid),) for uuid in sorted(uuids)]):
            rows = cur.execute(
                f"WITH {entry} SELECT o.order_uuid, o.order_id, o.buyer_id, o.creator_id "
                "FROM notification_orders o JOIN wanted ON wanted.order_uuid = o.order_uuid",
                params,
            ).fetchall()
            for row in rows:
                uuid = UUID(str(row["order_uuid"]))
                parties = Parties(buyer=int(row["buyer_id"]), creator=int(row["creator_id"]))
                found[uuid] = _Order(int(row["order_id"]), parties)
                self._orders.put(uuid, found[uuid])
        missing = uuids - found.keys()
        assert not missing, f"no order number for {sorted(missing)}"
        return found

    @staticmethod
    def _data(e: Any, order: _Order | None) -> dict[str, int]:
        """What a client needs to open the object the notification is about."""
        if order is None:
            return {"conversation_id": e.conversation, "message_id": e.number}
        data = {"order_id": order.number}
        if isinstance(e, Order.WorkDelivered):
            data["delivery_id"] = e.delivery
        if isinstance(e, Order.Reviewed):
            data["review_id"] = e.review
        return data

    def _write_held(self, cur: Cursor) -> None:
        """Write the notifications held back, their seqs and their users' counts, in one statement on
        PostgreSQL (three on SQLite, which has no data-modifying WITH); their pushes are built once
        the batch committed (`committed`), from the statement's answer, which the batch does not wait
        for (it comes with the next one's), and not at all where no one can hear them (`Outbox.heard`).

        Each takes its `seq` from `notification_seqs`: the one it was given when first stored, or
        the next (one runner writes at a time, so `seq` is the order notifications were first stored
        in, and a rebuild, which keeps that table, gives every one its old seq); each is read
        already if a read marker covers it ("mark all read" names the logs' heads, which may be
        ahead of this projection; a rebuild meets every marker before the notifications it covers).
        Held rather than written one by one: each statement would wait for its answer.
        """
        if not self._held:
            return
        pending, self._held = self._held, []
        rows = self._resolved(cur, pending)
        stored: list[Callable[[], list[Row]]] = []
        for entry, params in cur.rows("held", HELD_COLUMNS, rows):
            if cur.dialect == "postgresql":
                stored.append(cur.execute_read_later(stored_and_inserted(entry), params))
            else:
                cur.execute(f"WITH {entry} {STORE_SEQS}", params)
                stored.append(cur.execute_read_later(f"WITH {entry} {INSERT_NOTIFICATIONS}", params))
                stored_rows = "notifications AS n JOIN held ON held.id = n.id"
                cur.execute(f"WITH {entry} {add_counts(stored_rows, read_state('n'))}", params)
        if self.outbox.heard:
            self._unpushed.append((rows, stored))

    def committed(self) -> None:
        """Push what the batch stored, each row with the seq and read state its statement answered."""
        unpushed, self._unpushed = self._unpushed, []
        add = self.outbox.add
        for rows, stored in unpushed:
            by_id = {int(row["id"]): row for answer in stored for row in answer()}
            for number, _, user, _, _, kind, message, data, created_at in rows:
                row = by_id[number]
                is_read = bool(row["is_read"])
                pushed = {
                    "id": number,
                    "type": kind,
                    "message": message,
                    "data": data,
                    "is_read": is_read,
                    "created_at": created_at,
                }
                add(Push(kind="notification", to=user_channel(user), row=pushed, seq=int(row["seq"])))
        super().committed()

    def read(self, cur: Cursor, e: NotificationsRead.Read) -> None:
        self._write_held(cur)
        for number in e.notifications:
            cur.execute(
                "INSERT INTO notification_reads (user_id, notification_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (e.user, number),
            )
            # Counted before it changes: only a notification stored and unread so far (neither marked
            # by itself nor covered by a mark of all) leaves the unread.
            cur.execute(
                f"{UNREAD_LESS} (SELECT COUNT(*) FROM notifications WHERE id = %s AND user_id = %s "
                f"AND NOT {read_state('notifications')}) WHERE user_id = %s",
                (number, e.user, e.user),
            )
            cur.execute(
                "UPDATE notifications SET is_read = %s WHERE id = %s AND user_id = %s AND is_read = %s",
                (True, number, e.user, False),
            )

    def all_read(self, cur: Cursor, e: NotificationsRead.AllRead) -> None:
        """Store the marks; the rows they cover stay as they are (read as read: `read_state`), and the
        user's unread count becomes what is left past the marks, counted afresh: few rows, where
        taking off the rows newly covered would count every one of them."""
        self._write_held(cur)
        for source, up_to in e.up_to.items():
            cur.execute(
                "INSERT INTO notification_read_marks (user_id, source, up_to) VALUES (%s, %s, %s) "
                "ON CONFLICT (user_id, source) DO UPDATE SET up_to = CASE "
                "WHEN excluded.up_to > notification_read_marks.up_to THEN excluded.up_to "
                "ELSE notification_read_marks.up_to END",
                (e.user, source, up_to),
            )
        found = cur.execute("SELECT source, up_to FROM notification_read_marks WHERE user_id = %s", (e.user,))
        marked = {str(row["source"]): int(row["up_to"]) for row in found.fetchall()}
        cur.execute(
            f"UPDATE notification_counts SET unread = {' + '.join([UNREAD_PAST_MARK] * len(SOURCES))} "
            "WHERE user_id = %s",
            (*(value for source in SOURCES for value in (e.user, source, False, marked.get(source, 0))), e.user),
        )


# The held notifications as the statement reads them (`_resolved`'s rows): id, their order in the batch, then the rest.
HELD_COLUMNS = {
    "id": "bigint",
    "ord": "bigint",
    "user_id": "bigint",
    "source": "text",
    "position": "bigint",
    "type": "text",
    "message": "text",
    "data": "jsonb",
    "created_at": "timestamptz",
}

# A notification seen before (live, before a rebuild) keeps its seq; a new one takes the next (its
# place in the batch past the highest so far: a rebuild's batch, which meets old ids, leaves gaps,
# which order does not mind). The id's unique index decides which is which: asking first (NOT
# EXISTS) joined the batch with the whole table, which the plan prepared while the table was small
# did by reading all of it, every batch.
NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) FROM notification_seqs) + held.ord"
STORE_SEQS = (
    f"INSERT INTO notification_seqs (id, seq) SELECT held.id, {NEXT_SEQ} FROM held "
    "WHERE TRUE ON CONFLICT (id) DO NOTHING"  # WHERE: SQLite's parser needs it before ON CONFLICT
)
# Each row with its seq (stored, or the one STORE_SEQS stores in the same statement), `is_read` if it
# was marked read by itself, even before it was stored; the answer (its read state: a mark of all read
# may cover it) feeds the pushes and the counts. Whether the notification was read one by
# one is a keyed lookup per row, written as a scalar subquery: as an EXISTS, PostgreSQL may plan it
# as one hash of the whole of `notification_reads`, and a plan prepared while the table was small
# (kept for the session: nothing re-plans it without an ANALYZE) then read every row of it in every
# batch, 117 ms a batch at 300,000 reads.
INSERT_NOTIFICATIONS = (
    "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, is_read, created_at) "
    f"SELECT held.id, COALESCE((SELECT s.seq FROM notification_seqs s WHERE s.id = held.id), {NEXT_SEQ}), "
    "held.user_id, held.source, held.position, held.type, held.message, held.data, "
    "(SELECT 1 FROM notification_reads r WHERE r.user_id = held.user_id AND r.notification_id = held.id) IS NOT NULL, "
    f"held.created_at FROM held RETURNING id, seq, {read_state('notifications')} AS is_read, user_id"
)


def add_counts(stored: str, read: str) -> str:
    """Add the notifications just stored (`stored`: a FROM naming them `n`, whose read state is
    `read`) to their users' counts."""
    return (
        "INSERT INTO notification_counts (user_id, total, unread) "
        f"SELECT n.user_id, COUNT(*), SUM(CASE WHEN {read} THEN 0 ELSE 1 END) FROM {stored} "
        "WHERE TRUE GROUP BY n.user_id ON CONFLICT (user_id) DO UPDATE SET "  # WHERE: SQLite's parser, as above
        "total = notification_counts.total + excluded.total, unread = notification_counts.unread + excluded.unread"
    )


# Before a single mark changes its row: its user's unread count less the row, if it was unread.
UNREAD_LESS = "UPDATE notification_counts SET unread = unread -"
# A user's notifications of one log not marked read by themselves past the user's mark of it: an
# index range of `notifications_user_source_read`. Its parameters: user, log, FALSE, the mark (0: none).
# The mark is a value, not a subquery: with a bound it cannot see, the planner guessed a third of the
# user's rows and read the whole table (24.5 ms for 100,000 rows, where the range reads a few).
UNREAD_PAST_MARK = (
    "(SELECT COUNT(*) FROM notifications WHERE user_id = %s AND source = %s AND is_read = %s AND position > %s)"
)


def stored_and_inserted(entry: str) -> str:
    """PostgreSQL's one statement over the held notifications of `entry` (a WITH entry named `held`):
    their seqs stored, the notifications inserted and counted. Its parts see the tables as they were before
    it, where a new id's seq is not stored yet and NEXT_SEQ gives it the same number the WITH stores."""
    return (
        f"WITH {entry}, seqs AS ({STORE_SEQS}), inserted AS ({INSERT_NOTIFICATIONS}), "
        f"counted AS ({add_counts('inserted AS n', 'n.is_read')}) SELECT id, seq, is_read FROM inserted"
    )


class _Order(NamedTuple):
    number: int
    parties: Parties


class _Pending(NamedTuple):
    """A notifying event held to the batch's end, with its order's number and parties if known then."""

    source: str
    position: int
    event: Any
    order: _Order | None
