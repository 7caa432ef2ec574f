"""Turns notifying events of the orders and messaging logs into `notifications`, and pushes them.

Each notifying event names the user to tell (`notify`) and the line to show (`notice`); the type
comes from `ugc.notifications.TYPES`. A notification's `seq` is the next number in the table,
taken in the batch's own transaction (one runner writes at a time), so `seq` is store order.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from projections.base import Handler, Projection
from projections.outbox import Outbox
from ugc.database import Cursor
from ugc.messaging import Message
from ugc.notifications import TYPES, NotificationsRead, notification_id
from ugc.orders import Order
from ugc.push import Publisher, Push, user_channel
from ugc.store import Messaging, Orders


class NotificationsProjection(Projection):
    name = "notifications"
    applications: ClassVar[tuple[str, ...]] = (Orders.name, Messaging.name)
    tables: ClassVar[tuple[str, ...]] = (
        "notifications",
        "notification_orders",
        "notification_reads",
        "notification_read_marks",
    )

    def __init__(self, publisher: Publisher | None = None) -> None:
        self.outbox = Outbox(publisher)

    def handlers(self) -> Mapping[type, Handler]:
        notifying: dict[type, Handler] = {
            event_class: partial(self.notify, Messaging.name if event_class is Message.Sent else Orders.name)
            for event_class in TYPES
        }
        return notifying | {NotificationsRead.Read: self.read, NotificationsRead.AllRead: self.all_read}

    def committed(self) -> None:
        self.outbox.flush()

    def aborted(self) -> None:
        self.outbox.discard()

    def notify(self, source: str, cur: Cursor, e: Any) -> None:
        if isinstance(e, Order.Placed):
            cur.execute(
                "INSERT INTO notification_orders (order_uuid, order_id) VALUES (%s, %s)",
                (str(e.originator_id), e.number),
            )
        number = notification_id(source, self.position)
        kind, data = TYPES[type(e)], _data(cur, e)
        # One statement: the next `seq`, and whether a read marker covers it already ("mark all
        # read" names the logs' heads, which may be ahead of this projection; a rebuild meets
        # every marker before the notifications it covers).
        stored = cur.execute(
            "INSERT INTO notifications (id, seq, user_id, source, position, type, message, data, is_read, created_at) "
            "VALUES (%s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM notifications), %s, %s, %s, %s, %s, %s, "
            "EXISTS (SELECT 1 FROM notification_reads WHERE user_id = %s AND notification_id = %s) "
            "OR EXISTS (SELECT 1 FROM notification_read_marks WHERE user_id = %s AND source = %s AND up_to >= %s), "
            "%s) RETURNING seq, is_read",
            (
                number,
                e.notify,
                source,
                self.position,
                kind,
                e.notice,
                data,
                e.notify,
                number,
                e.notify,
                source,
                self.position,
                e.at,
            ),
        ).fetchone()
        assert stored is not None
        seq = int(stored["seq"])
        row = {
            "id": number,
            "type": kind,
            "message": e.notice,
            "data": data,
            "is_read": bool(stored["is_read"]),
            "created_at": e.at,
        }
        self.outbox.add(Push(kind="notification", to=user_channel(e.notify), row=row, seq=seq))

    def read(self, cur: Cursor, e: NotificationsRead.Read) -> None:
        for number in e.notifications:
            cur.execute(
                "INSERT INTO notification_reads (user_id, notification_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (e.user, number),
            )
            cur.execute("UPDATE notifications SET is_read = %s WHERE id = %s AND user_id = %s", (True, number, e.user))

    def all_read(self, cur: Cursor, e: NotificationsRead.AllRead) -> None:
        for source, up_to in e.up_to.items():
            cur.execute(
                "INSERT INTO notification_read_marks (user_id, source, up_to) VALUES (%s, %s, %s) "
                "ON CONFLICT (user_id, source) DO UPDATE SET up_to = CASE "
                "WHEN excluded.up_to > notification_read_marks.up_to THEN excluded.up_to "
                "ELSE notification_read_marks.up_to END",
                (e.user, source, up_to),
            )
            cur.execute(
                "UPDATE notifications SET is_read = %s WHERE user_id = %s AND source = %s AND position <= %s "
                "AND is_read = %s",
                (True, e.user, source, up_to, False),
            )


def _data(cur: Cursor, e: Any) -> dict[str, int]:
    """What a client needs to open the object the notification is about."""
    if isinstance(e, Message.Sent):
        return {"conversation_id": e.conversation, "message_id": e.number}
    if isinstance(e, Order.Placed):
        return {"order_id": e.number}
    row = cur.execute(
        "SELECT order_id FROM notification_orders WHERE order_uuid = %s", (str(e.originator_id),)
    ).fetchone()
    assert row is not None, f"no order number for {e.originator_id}"
    data = {"order_id": int(row["order_id"])}
    if isinstance(e, Order.WorkDelivered):
        data["delivery_id"] = e.delivery
    if isinstance(e, Order.Reviewed):
        data["review_id"] = e.review
    return data
