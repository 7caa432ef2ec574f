"""Marking notifications read, decided from the log itself.

A notification's id names the event behind it (`ugc.notifications`), so whether the caller may
mark it is read from that event's `notify`, never from the read model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from eventsourcing.application import AggregateNotFoundError

from commands.news import news_head
from commands.saving import Positions, change, stored_so_far
from ugc.clock import Clock
from ugc.errors import NotFound
from ugc.events import user_actor
from ugc.messaging import Message
from ugc.notifications import (
    SOURCES,
    NotificationsRead,
    Parties,
    inbox_id,
    notification_source,
    notification_type,
    recipients,
)
from ugc.orders import Order
from ugc.platform.store import EventStores


class NotificationCommands:
    def __init__(self, stores: EventStores, clock: Clock) -> None:
        self.stores = stores
        self.app = stores.messaging
        self.clock = clock

    def mark_read(self, user: int, notification: int) -> Positions:
        if not self._notifies(user, notification):
            raise NotFound("notification_not_found")
        return self._record(user, lambda found, now: found.read([notification], now))

    def mark_all_read(self, user: int) -> Positions:
        """Everything notified by events appended so far, in every log that notifies (read markers'
        moves in the messaging log aside: marking again with nothing new records nothing)."""
        heads = self.stores.heads(SOURCES)

        def read_all(inbox: NotificationsRead, now: datetime) -> None:
            own = self.app.name
            marked = inbox.up_to.get(own, 0)
            inbox.read_all(heads | {own: news_head(self.app, marked, heads[own])}, now)

        return self._record(user, read_all)

    def _notifies(self, user: int, notification: int) -> bool:
        source = notification_source(notification)
        if source is None:
            return False
        application, position, nth = source
        app = self.stores[application]
        found = app.recorder.select_notifications(start=position, limit=1)
        if not found or found[0].id != position:
            return False
        domain_event = app.mapper.to_domain_event(found[0])
        if notification_type(domain_event) is None:
            return False
        parties = None
        if not isinstance(domain_event, Message.Sent):  # an order's: its parties are the order's own
            order: Order = app.repository.get(domain_event.originator_id)
            parties = Parties(buyer=order.buyer, creator=order.creator)
        told = recipients(domain_event, parties)
        return nth < len(told) and told[nth] == user

    def _record(self, user: int, read: Callable[[NotificationsRead, datetime], None]) -> Positions:
        def inbox() -> NotificationsRead:
            try:
                found: NotificationsRead = self.app.repository.get(inbox_id(user))
            except AggregateNotFoundError:
                return NotificationsRead(user=user, at=self.clock.now(), actor=user_actor(user))
            return found

        # A mark with nothing to move stores nothing, perhaps because a twin's was stored a moment ago
        # (another device, a retry): the answer waits for what is stored, not showing the unread.
        return change(self.app, inbox, lambda found: read(found, self.clock.now())).positions or stored_so_far(self.app)
