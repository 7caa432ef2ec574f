"""Conversations between two users and their messages (the spec's "Чат и сообщения")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse
from api.idempotency import idempotent
from api.openapi import Operation, endpoint
from api.pagination import page_request, paginated
from api.responses import JSON
from api.schemas.messaging import (
    ConversationOut,
    MessageOut,
    SendMessageIn,
    StartConversationIn,
    render_conversation,
    render_message,
)
from api.schemas.orders import EmptyIn
from api.services import Services, services
from readmodels import messaging as read
from readmodels.pages import read_page_async
from ugc.platform.dialect import Row

# Access ------------------------------------------------------------------------------------------


async def _caller(request: Request) -> tuple[Services, int]:
    s = services(request)
    return s, authenticated_user(request, s.tokens)


async def _visible_conversation(s: Services, user_id: int, conversation_id: int) -> Row:
    """The conversation if the caller takes part in it; 404 otherwise (no existence leaks)."""
    row = await s.run(read.get_conversation, s.db, conversation_id)
    if row is None or user_id not in (row["user_a"], row["user_b"]):
        raise errors.not_found("conversation_not_found")
    return row


# Endpoints ---------------------------------------------------------------------------------------


@idempotent
async def start_conversation(request: Request) -> Response:
    s, user_id = await _caller(request)
    body = await parse(request, StartConversationIn)
    started = await s.run(s.messaging.start_conversation, user_id, body.recipient_id)
    await s.settle(started.positions)
    row = await s.run(read.get_conversation, s.db, started.conversation_id)
    assert row is not None
    return JSON(render_conversation(row, user_id), status_code=201 if started.created else 200)


async def list_conversations(request: Request) -> Response:
    s, user_id = await _caller(request)
    wanted = page_request(request)
    page = await read_page_async(s.db, read.list_conversations(user_id, wanted))
    return JSON(paginated(request, wanted, page, lambda row: render_conversation(row, user_id)))


async def list_messages(request: Request) -> Response:
    s, user_id = await _caller(request)
    conversation_id: int = request.path_params["id"]
    await _visible_conversation(s, user_id, conversation_id)
    wanted = page_request(request)
    page = await read_page_async(s.db, read.list_messages(conversation_id, wanted))
    return JSON(paginated(request, wanted, page, render_message))


@idempotent
async def send_message(request: Request) -> Response:
    """What a WebSocket message does, over REST: store it (participants are pushed it too)."""
    s, user_id = await _caller(request)
    body = await parse(request, SendMessageIn)
    sent = await s.run(s.messaging.send_message, request.path_params["id"], user_id, body.message)
    await s.settle(sent.positions)
    row = await s.run(read.get_message, s.db, sent.message_id)
    assert row is not None
    return JSON(render_message(row), status_code=201)


@idempotent
async def mark_read(request: Request) -> Response:
    s, user_id = await _caller(request)
    await parse(request, EmptyIn)
    conversation_id: int = request.path_params["id"]
    await _visible_conversation(s, user_id, conversation_id)
    positions = await s.run(s.messaging.mark_read, conversation_id, user_id)
    await s.settle(positions)
    row = await _visible_conversation(s, user_id, conversation_id)
    return JSON(render_conversation(row, user_id))


routes = [
    endpoint(
        "POST",
        "/api/v1/conversations/",
        start_conversation,
        Operation(
            "Создание нового диалога (существующий с этим пользователем — 200)",
            StartConversationIn,
            ConversationOut,
            status=201,
            also=((200, ConversationOut),),
        ),
    ),
    endpoint(
        "GET",
        "/api/v1/conversations/",
        list_conversations,
        Operation("Диалоги пользователя, недавние первыми", response=ConversationOut, paginated=True),
    ),
    endpoint(
        "GET",
        "/api/v1/conversations/{id:id}/messages/",
        list_messages,
        Operation("Сообщения диалога, новые первыми", response=MessageOut, paginated=True),
    ),
    endpoint(
        "POST",
        "/api/v1/conversations/{id:id}/messages/",
        send_message,
        Operation("Отправка сообщения (как через WebSocket)", SendMessageIn, MessageOut, status=201, conflict="erased"),
    ),
    endpoint(
        "POST",
        "/api/v1/conversations/{id:id}/mark-as-read/",
        mark_read,
        Operation("Отметить диалог прочитанным", EmptyIn, ConversationOut, open_to_unverified=True),
    ),
]
