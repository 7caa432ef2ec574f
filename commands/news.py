"""Whether a log holds news since a read marker: anything but read markers' own moves.

A marker ("read up to here") is stored in the log it marks, so each move of any marker moves that
log's head. Taken as news, marking again with nothing new would store an event at every call (and
two markers of one reader would move each other on for ever): a client looping on "mark read"
would grow the log without end.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application

from ugc.messaging import ConversationRead
from ugc.notifications import NotificationsRead

MARKER_TOPICS = frozenset(
    event.TOPIC
    for event in (
        ConversationRead.Started,
        ConversationRead.MarkedRead,
        NotificationsRead.Started,
        NotificationsRead.Read,
        NotificationsRead.AllRead,
    )
)
SCAN = 100  # events looked at past the marker; more are taken for news (a mark too many, not a long scan)


def news_head(app: Application[UUID], marked: int, head: int) -> int:
    """`head`, or `marked` when every event after `marked` up to `head` is a read marker's."""
    if head <= marked:
        return marked
    found = app.recorder.select_notifications(start=marked + 1, limit=SCAN, stop=head)
    if len(found) < SCAN and all(notification.topic in MARKER_TOPICS for notification in found):
        return marked
    return head
