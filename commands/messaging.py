"""Conversations: starting one per pair of users, sending messages, marking a conversation read."""

from __future__ import annotations

from dataclasses import dataclass

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.news import news_head
from commands.saving import Positions, change, save, stored_so_far
from commands.standing import Standings
from ugc.accounts import User
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.errors import Conflict, InvalidField, NotFound
from ugc.events import user_actor
from ugc.ids import aggregate_id, claim_id
from ugc.messaging import (
    PAIR_CLAIM,
    Conversation,
    ConversationRead,
    conversation_id,
    message_text,
    pair_key,
    read_marker_id,
)
from ugc.platform.database import Database
from ugc.platform.personal_data import PersonErased
from ugc.platform.store import EventStores


@dataclass(frozen=True)
class Started:
    conversation_id: int
    created: bool  # False: the pair already had a conversation, and this is it
    positions: Positions


@dataclass(frozen=True)
class Sent:
    message_id: int
    positions: Positions


class MessagingCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock, standings: Standings) -> None:
        """`standings`: the process's own (a server's forgets an erased person's the moment it hears)."""
        self.stores = stores
        self.app = stores.messaging
        self.db = db
        self.clock = clock
        self.standings = standings

    def start_conversation(self, starter: int, recipient: int) -> Started:
        """The pair's conversation: a new one, or the one they already have (asking again is safe).

        A claim on the pair, saved with the conversation in one append, makes the second of two
        racing starts collide on the store's key; it then answers with the winner's conversation.
        """
        if starter == recipient:
            raise InvalidField("recipient_id", "own_conversation")
        try:
            other = self._user(recipient)
        except NotFound:  # a reference in the body, not the resource asked for (DESIGN: 422, not 404)
            raise InvalidField("recipient_id", "unknown_recipient") from None
        if other.erased:  # gone for everyone: no one would ever read it, not even an earlier conversation
            raise InvalidField("recipient_id", "unknown_recipient")
        existing = self._conversation_of_pair(starter, recipient)
        if existing is not None:
            return existing
        starting = self._user(starter)
        if starting.erased:  # moments ago, with a token whose standing a server still keeps
            raise PersonErased(f"user {starter} was erased")
        number = self.db.next_number("conversation")
        now = self.clock.now()
        conversation = Conversation.start(
            number=number,
            starter=starter,
            starter_username=starting.username,
            recipient=recipient,
            recipient_username=other.username,
            at=now,
        )
        pair = pair_key(starter, recipient)
        claim = Claim(kind=PAIR_CLAIM, value=pair, owner_number=number, at=now, actor=user_actor(starter))
        try:
            positions = save(self.app, claim, conversation)
        except IntegrityError:
            existing = self._conversation_of_pair(starter, recipient)
            if existing is None:
                raise
            return existing
        return Started(conversation_id=number, created=True, positions=positions)

    def send_message(self, conversation: int, sender: int, text: str, *, number: int | None = None) -> Sent:
        """Append one message: loads the conversation's single event, never its messages. `number`:
        a message id drawn beforehand (`ugc seed --demo`), a fresh one otherwise.

        Not to an erased person (409): nobody would ever read it, as no conversation with them can be
        started; the conversation stays readable. Their standing says so, usually with no I/O."""
        message_text(text)  # a bad text is refused before anything is looked up (422 before 404)
        started = self._conversation(conversation)
        recipient = started.other_party(sender)
        if (self.standings.known(recipient) or self.standings.load(recipient)) is None:
            raise Conflict("recipient_erased")
        number = number or self.db.next_number("message")
        message = started.send(number=number, sender=sender, text=text, at=self.clock.now())
        return Sent(message_id=number, positions=save(self.app, message))

    def mark_read(self, conversation: int, user: int) -> Positions:
        """`user` has read everything in the conversation appended so far."""
        if not self._conversation(conversation).takes_part(user):
            raise NotFound("conversation_not_found")
        up_to = self.app.recorder.max_notification_id() or 0

        def marker() -> ConversationRead:
            try:
                found: ConversationRead = self.app.repository.get(read_marker_id(conversation, user))
            except AggregateNotFoundError:
                return ConversationRead(
                    conversation=conversation, user=user, at=self.clock.now(), actor=user_actor(user)
                )
            return found

        def decide(read: ConversationRead) -> None:
            read.mark_read(news_head(self.app, read.up_to, up_to), self.clock.now())

        # A mark with nothing to move stores nothing, and may be so because a twin's mark (another
        # device, a retry) was stored a moment ago: the answer waits for it, not showing the unread.
        return change(self.app, marker, decide).positions or stored_so_far(self.app)

    def _conversation(self, number: int) -> Conversation:
        try:
            found: Conversation = self.app.repository.get(conversation_id(number))
        except AggregateNotFoundError:
            raise NotFound("conversation_not_found") from None
        return found

    def _conversation_of_pair(self, first: int, second: int) -> Started | None:
        try:
            claim: Claim = self.app.repository.get(claim_id(PAIR_CLAIM, pair_key(first, second)))
        except AggregateNotFoundError:
            return None
        # Whoever created it may not have been projected yet: wait for everything appended so far.
        return Started(conversation_id=claim.owner_number, created=False, positions=stored_so_far(self.app))

    def _user(self, number: int) -> User:
        try:
            user: User = self.stores.accounts.repository.get(aggregate_id("user", number))
        except AggregateNotFoundError:
            raise NotFound("user_not_found") from None
        return user
