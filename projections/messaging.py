"""Keeps `conversations` and `messages` from the messaging log, and pushes each stored message
(its `seq` its log position, the order a conversation's socket and its pages show them in).

Unread counts are kept per side of a conversation: a message adds one for its recipient; a read
marker recounts the messages after it (stored positions, so a rebuild counts the same). The lists'
totals too: a conversation adds one to each participant's `conversation_counts`, a message one to
its conversation's `message_counts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler
from projections.outbox import PushingProjection
from ugc.messaging import Conversation, ConversationRead, Message
from ugc.platform.dialect import Cursor
from ugc.platform.push import Push, conversation_channel
from ugc.platform.store import Messaging


class MessagingProjection(PushingProjection):
    name = "messaging"
    applications: ClassVar[tuple[str, ...]] = (Messaging.name,)
    tables: ClassVar[tuple[str, ...]] = ("conversations", "messages", "conversation_counts", "message_counts")

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Conversation.Started: self.started,
            Message.Sent: self.sent,
            ConversationRead.MarkedRead: self.marked_read,
        }

    def started(self, cur: Cursor, e: Conversation.Started) -> None:
        cur.execute(
            "INSERT INTO conversations (id, uuid, user_a, username_a, user_b, username_b, activity, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.number,
                str(e.originator_id),
                e.first_user,
                e.first_username,
                e.second_user,
                e.second_username,
                self.position,
                e.at,
                e.at,
            ),
        )
        cur.execute(
            "INSERT INTO conversation_counts (user_id, n) VALUES (%s, 1), (%s, 1) "
            "ON CONFLICT (user_id) DO UPDATE SET n = conversation_counts.n + 1",
            (e.first_user, e.second_user),
        )

    def sent(self, cur: Cursor, e: Message.Sent) -> None:
        cur.execute(
            "INSERT INTO messages (id, conversation_id, position, sender_id, sender_username, text, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (e.number, e.conversation, self.position, e.sender, e.sender_username, e.text, e.at),
        )
        cur.execute(
            "INSERT INTO message_counts (conversation_id, n) VALUES (%s, 1) "
            "ON CONFLICT (conversation_id) DO UPDATE SET n = message_counts.n + 1",
            (e.conversation,),
        )
        # The recipient is the side that is not the sender: one UPDATE decides which counter grows.
        cur.execute(
            "UPDATE conversations SET last_message_id = %s, last_message_sender_id = %s, last_message_text = %s, "
            "last_message_at = %s, updated_at = %s, activity = %s, "
            "unread_a = unread_a + CASE WHEN user_a = %s THEN 1 ELSE 0 END, "
            "unread_b = unread_b + CASE WHEN user_b = %s THEN 1 ELSE 0 END "
            "WHERE id = %s",
            (e.number, e.sender, e.text, e.at, e.at, self.position, e.recipient, e.recipient, e.conversation),
        )
        sender = cur.execute("SELECT avatar FROM users WHERE id = %s", (e.sender,)).fetchone()
        self.outbox.add(
            Push(
                kind="message",
                to=conversation_channel(e.conversation),
                seq=self.position,
                row={
                    "id": e.number,
                    "conversation_id": e.conversation,
                    "sender_id": e.sender,
                    "sender_username": e.sender_username,
                    "sender_avatar": sender["avatar"] if sender else None,
                    "text": e.text,
                    "created_at": e.at,
                },
            )
        )

    def marked_read(self, cur: Cursor, e: ConversationRead.MarkedRead) -> None:
        row = cur.execute("SELECT user_a FROM conversations WHERE id = %s", (e.conversation,)).fetchone()
        assert row is not None, f"no conversation {e.conversation}"
        side = "a" if row["user_a"] == e.user else "b"
        unread = cur.execute(
            "SELECT COUNT(*) AS n FROM messages WHERE conversation_id = %s AND sender_id <> %s AND position > %s",
            (e.conversation, e.user, e.up_to),
        ).fetchone()
        cur.execute(
            f"UPDATE conversations SET read_{side} = %s, unread_{side} = %s WHERE id = %s",
            (e.up_to, int(unread["n"]) if unread else 0, e.conversation),
        )
