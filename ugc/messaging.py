"""Conversations between two users, the messages in them, and how far each user has read.

A message is an aggregate of its own, not an event of its conversation: appending one loads only
the (one-event) conversation to check the sender takes part, then saves one new aggregate. Its
cost does not grow with the conversation, and two messages into one conversation never clash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import InvalidField, NotFound
from ugc.events import Caused, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id

MAX_MESSAGE_LENGTH = 4000
PAIR_CLAIM = "conversation-pair"


def conversation_id(number: int) -> UUID:
    return aggregate_id("conversation", number)


def message_id(number: int) -> UUID:
    return aggregate_id("message", number)


def read_marker_id(conversation: int, user: int) -> UUID:
    return aggregate_id("conversation-read", f"{conversation}:{user}")


def pair_key(first: int, second: int) -> str:
    """The value of the claim that makes a pair of users have one conversation, whoever starts it."""
    return f"{min(first, second)}:{max(first, second)}"


def message_text(raw: str) -> str:
    """The text as stored: stripped, 1 to MAX_MESSAGE_LENGTH characters."""
    text = raw.strip()
    if not text:
        raise InvalidField("message", "message_blank")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise InvalidField("message", "message_too_long")
    return text


@stored_as
class Conversation(Aggregate):
    @dataclass(frozen=True)
    class Started(Caused, Aggregate.Created):
        TOPIC = "ugc.Conversation.Started"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        first_user: int
        first_username: str
        second_user: int
        second_username: str
        at: datetime

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return conversation_id(number)

    @event(Started)
    def __init__(
        self,
        *,
        number: int,
        first_user: int,
        first_username: str,
        second_user: int,
        second_username: str,
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.usernames = {first_user: first_username, second_user: second_username}
        self.first_user = first_user
        self.second_user = second_user

    @classmethod
    def start(
        cls, *, number: int, starter: int, starter_username: str, recipient: int, recipient_username: str, at: datetime
    ) -> Conversation:
        if starter == recipient:
            raise InvalidField("recipient_id", "own_conversation")
        return cls(
            number=number,
            first_user=starter,
            first_username=starter_username,
            second_user=recipient,
            second_username=recipient_username,
            at=at,
            actor=user_actor(starter),
        )

    def takes_part(self, user: int) -> bool:
        return user in (self.first_user, self.second_user)

    def other_party(self, user: int) -> int:
        """Who `user` (who must take part) talks to here."""
        if not self.takes_part(user):
            raise NotFound("conversation_not_found")
        return self.second_user if user == self.first_user else self.first_user

    def send(self, *, number: int, sender: int, text: str, at: datetime) -> Message:
        """A new message from `sender` (who must take part) to the other participant."""
        recipient = self.other_party(sender)
        return Message(
            number=number,
            conversation=self.number,
            sender=sender,
            sender_username=self.usernames[sender],
            recipient=recipient,
            text=message_text(text),
            at=at,
            actor=user_actor(sender),
        )


@stored_as
class Message(Aggregate):
    @dataclass(frozen=True)
    class Sent(Caused, Aggregate.Created):
        TOPIC = "ugc.Message.Sent"
        class_version = 2
        number: int
        conversation: int
        sender: int
        sender_username: str
        recipient: int
        text: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 also stored whom to notify (the recipient) and a Russian line (now a projection's)."""
            del state["notify"], state["notice"]
            upcast_cause(state, user_actor(state["sender"]))

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return message_id(number)

    @event(Sent)
    def __init__(
        self,
        *,
        number: int,
        conversation: int,
        sender: int,
        sender_username: str,
        recipient: int,
        text: str,
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.conversation = conversation
        self.sender = sender
        self.text = text


@stored_as
class ConversationRead(Aggregate):
    """How far one user has read one conversation: a position in the messaging log.

    A position rather than a message id because the command knows it from the write side (the
    log's head when the user asked), and message ids, drawn before their append, may land in the
    log out of order.
    """

    @dataclass(frozen=True)
    class Started(Caused, Aggregate.Created):
        TOPIC = "ugc.ConversationRead.Started"
        class_version = 2
        conversation: int
        user: int
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["user"]))  # a reader marks only their own reading

    @dataclass(frozen=True)
    class MarkedRead(Caused, Aggregate.Event):
        TOPIC = "ugc.ConversationRead.MarkedRead"
        class_version = 2
        conversation: int
        user: int
        up_to: int
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["user"]))

    @staticmethod
    def create_id(conversation: int, user: int, **_: Any) -> UUID:
        return read_marker_id(conversation, user)

    @event(Started)
    def __init__(self, *, conversation: int, user: int, at: datetime, actor: str) -> None:
        self.conversation = conversation
        self.user = user
        self.up_to = 0

    def mark_read(self, up_to: int, at: datetime) -> None:
        """Read everything up to log position `up_to`; a marker never moves back, nor records staying put."""
        if up_to > self.up_to:
            self._marked_read(self.conversation, self.user, up_to, at, user_actor(self.user))

    @event(MarkedRead)
    def _marked_read(self, conversation: int, user: int, up_to: int, at: datetime, actor: str) -> None:
        self.up_to = up_to
