"""Conversations, messages and notifications: request bodies and the shapes answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from api.ids import PublicId
from api.schemas.out import Out


class StartConversationIn(BaseModel):
    recipient_id: PublicId


class SendMessageIn(BaseModel):
    """The text is stripped and must keep 1 to 4000 characters (the domain decides, as on the socket)."""

    message: str


class Participant(Out):
    id: int
    username: str
    avatar: str | None


class MessageOut(Out):
    """A message, as REST answers it and as `/ws/conversations/{id}/` pushes it."""

    id: int
    sender: Participant
    message: str
    timestamp: datetime


class ConversationOut(Out):
    id: int
    participants: list[Participant]
    other_participant: Participant
    last_message: MessageOut | None
    unread_count: int
    created_at: datetime
    updated_at: datetime


class NotificationOut(Out):
    """A notification, as REST answers it and as `/ws/notifications/` pushes it."""

    id: int
    type: str
    message: str
    data: dict[str, Any]
    created_at: datetime
    is_read: bool


class NotificationReadOut(Out):
    id: int
    is_read: bool


class AllReadOut(Out):
    unread_count: int
