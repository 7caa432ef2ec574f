"""Conversations, messages and notifications: request bodies and the shapes answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from api.ids import PublicId
from api.schemas.out import Out, Row


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


def render_message(row: Row) -> dict[str, Any]:
    """`row` is a `messages` row or a pushed one."""
    return {
        "id": row["id"],
        "sender": {"id": row["sender_id"], "username": row["sender_username"], "avatar": row["sender_avatar"]},
        "message": row["text"],
        "timestamp": row["created_at"],
    }


class ConversationOut(Out):
    id: int
    participants: list[Participant]
    other_participant: Participant
    last_message: MessageOut | None
    unread_count: int
    created_at: datetime
    updated_at: datetime


def render_conversation(row: Row, user_id: int) -> dict[str, Any]:
    """The conversation as `user_id`, one of its two participants, sees it."""
    sides = {
        row["user_a"]: {"id": row["user_a"], "username": row["username_a"], "avatar": row["avatar_a"]},
        row["user_b"]: {"id": row["user_b"], "username": row["username_b"], "avatar": row["avatar_b"]},
    }
    other = row["user_b"] if user_id == row["user_a"] else row["user_a"]
    last_message = None
    if row["last_message_id"] is not None:
        sender = sides[row["last_message_sender_id"]]
        last_message = {
            "id": row["last_message_id"],
            "sender": sender,
            "message": row["last_message_text"],
            "timestamp": row["last_message_at"],
        }
    return {
        "id": row["id"],
        "participants": [sides[row["user_a"]], sides[row["user_b"]]],
        "other_participant": sides[other],
        "last_message": last_message,
        "unread_count": row["unread_a"] if user_id == row["user_a"] else row["unread_b"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class NotificationOut(Out):
    """A notification, as REST answers it and as `/ws/notifications/` pushes it."""

    id: int
    type: str
    message: str
    data: dict[str, Any]
    created_at: datetime
    is_read: bool


def render_notification(row: Row) -> dict[str, Any]:
    """`row` is a stored notification or a pushed one."""
    return {
        "id": row["id"],
        "type": row["type"],
        "message": row["message"],
        "data": row["data"],
        "created_at": row["created_at"],
        "is_read": bool(row["is_read"]),
    }


class NotificationReadOut(Out):
    id: int
    is_read: bool


def render_notification_read(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "is_read": bool(row["is_read"])}


class AllReadOut(Out):
    unread_count: int
