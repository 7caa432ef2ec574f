"""Notifications: the list, marking one or all as read (the spec's "Уведомления")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse
from api.idempotency import idempotent
from api.openapi import Operation, endpoint
from api.pagination import page_request, paginated
from api.query import query_flag
from api.responses import JSON
from api.schemas.messaging import (
    AllReadOut,
    NotificationOut,
    NotificationReadOut,
    render_notification,
    render_notification_read,
)
from api.schemas.orders import EmptyIn
from api.services import Services, services
from readmodels import notifications as read
from readmodels.pages import read_page_async


async def _caller(request: Request) -> tuple[Services, int]:
    s = services(request)
    return s, authenticated_user(request, s.tokens)


async def list_notifications(request: Request) -> Response:
    s, user_id = await _caller(request)
    read_filter = query_flag(request, "read")
    wanted = page_request(request)
    page = await read_page_async(s.db, read.list_notifications(user_id, wanted, read=read_filter))
    return JSON(paginated(request, wanted, page, render_notification))


@idempotent
async def mark_read(request: Request) -> Response:
    s, user_id = await _caller(request)
    await parse(request, EmptyIn)
    notification_id: int = request.path_params["id"]
    positions = await s.run(s.notifications.mark_read, user_id, notification_id)
    await s.settle(positions)
    row = await s.run(read.get_notification, s.db, user_id, notification_id)
    if row is None:
        raise errors.not_found("notification_not_found")
    return JSON(render_notification_read(row))


@idempotent
async def mark_all_read(request: Request) -> Response:
    s, user_id = await _caller(request)
    await parse(request, EmptyIn)
    positions = await s.run(s.notifications.mark_all_read, user_id)
    await s.settle(positions)
    return JSON({"unread_count": await s.run(read.unread_count, s.db, user_id)})


routes = [
    endpoint(
        "GET",
        "/api/v1/notifications/",
        list_notifications,
        Operation(
            "Уведомления, новые первыми (read=true|false)", response=NotificationOut, paginated=True, query=("read",)
        ),
    ),
    endpoint(
        "POST",
        "/api/v1/notifications/mark-all-read/",
        mark_all_read,
        Operation("Отметить все уведомления прочитанными", EmptyIn, AllReadOut, open_to_unverified=True),
    ),
    endpoint(
        "POST",
        "/api/v1/notifications/{id:id}/mark-as-read/",
        mark_read,
        Operation("Отметка уведомления как прочитанного", EmptyIn, NotificationReadOut, open_to_unverified=True),
    ),
]
