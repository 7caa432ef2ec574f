"""Conversations, messages and notification ids as pure domain: given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections.notification_texts import line
from ugc.errors import InvalidField, NotFound
from ugc.events import user_actor
from ugc.messaging import MAX_MESSAGE_LENGTH, Conversation, ConversationRead, Message, message_text, pair_key
from ugc.notifications import (
    RECIPIENTS_AT_MOST,
    SOURCES,
    acting_role,
    notification_id,
    notification_source,
    notification_type,
    recipients,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ANNA, BORIS, EVE = 11, 22, 33


def started() -> Conversation:
    return Conversation.start(
        number=5, starter=ANNA, starter_username="anna", recipient=BORIS, recipient_username="boris", at=NOW
    )


def test_a_pair_is_the_same_pair_whoever_asks() -> None:
    assert pair_key(ANNA, BORIS) == pair_key(BORIS, ANNA) == "11:22"


def test_nobody_starts_a_conversation_with_themselves() -> None:
    with pytest.raises(InvalidField) as refused:
        Conversation.start(
            number=1, starter=ANNA, starter_username="anna", recipient=ANNA, recipient_username="anna", at=NOW
        )
    assert (refused.value.field, refused.value.code) == ("recipient_id", "own_conversation")


def test_a_message_goes_to_the_other_participant_and_notifies_them() -> None:
    message = started().send(number=9, sender=BORIS, text="  Привет  ", at=NOW)
    assert isinstance(message, Message)
    (sent,) = message.collect_events()
    assert isinstance(sent, Message.Sent)
    assert (sent.conversation, sent.sender, sent.recipient, sent.text) == (5, BORIS, ANNA, "Привет")
    assert (recipients(sent, None), line(str(notification_type(sent)), acting_role(sent, None), sent)) == (
        (ANNA,),
        "Новое сообщение от boris.",
    )


def test_an_outsider_cannot_send() -> None:
    with pytest.raises(NotFound):
        started().send(number=9, sender=EVE, text="Привет", at=NOW)


@pytest.mark.parametrize(
    ("raw", "code"), [("", "message_blank"), (" \n\t ", "message_blank"), ("я" * 4001, "message_too_long")]
)
def test_a_message_text_is_one_to_4000_characters_once_stripped(raw: str, code: str) -> None:
    with pytest.raises(InvalidField) as refused:
        message_text(raw)
    assert refused.value.code == code
    assert message_text(" " + "я" * MAX_MESSAGE_LENGTH + " ") == "я" * MAX_MESSAGE_LENGTH


def test_a_read_marker_never_moves_back() -> None:
    marker = ConversationRead(conversation=5, user=ANNA, at=NOW, actor=user_actor(ANNA))
    marker.mark_read(40, NOW)
    marker.mark_read(30, NOW)
    marker.mark_read(40, NOW)
    assert marker.up_to == 40
    marked = [e for e in marker.collect_events() if isinstance(e, ConversationRead.MarkedRead)]
    assert [e.up_to for e in marked] == [40]  # staying put records nothing


def test_notification_ids_name_their_event() -> None:
    ids = set()
    for source in SOURCES:
        for position in (1, 2, 10**12):
            for nth in range(RECIPIENTS_AT_MOST):
                ids.add(notification_id(source, position, nth))
                assert notification_source(notification_id(source, position, nth)) == (source, position, nth)
    assert len(ids) == len(SOURCES) * 3 * RECIPIENTS_AT_MOST
    for impossible in (0, 1, 2, 7, 8 * 5, 8 * 5 + 5, 8 * 5 + 7):
        assert notification_source(impossible) is None
