"""Orders: placing, the lifecycle commands, deliveries, reviews, and the auditor's history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse, validate
from api.idempotency import idempotent
from api.openapi import Operation, endpoint
from api.own_rows import own_user
from api.pagination import page_request, paginated
from api.responses import JSON
from api.schemas.orders import (
    ApprovedOut,
    CancelIn,
    CancelledOut,
    DeliverIn,
    DeliveryOut,
    EmptyIn,
    HistoryEntry,
    OrderOut,
    OrderQuery,
    PlaceOrderIn,
    ReviewIn,
    ReviewOut,
    RevisionIn,
    StatusOut,
    UpdateOrderIn,
    render_approved,
    render_cancelled,
    render_delivery,
    render_order,
    render_review,
    render_status,
)
from api.services import Services, services
from api.versions import preconditions, versioned
from commands.orders import Saved
from readmodels import orders as read
from readmodels.audit_record import order_record
from readmodels.creators import get_creator_profile
from readmodels.order_history import AsOf, BadAsOf, judged_on, order_as_of, parse_as_of
from readmodels.pages import Page, read_page_async
from ugc.errors import NotFound
from ugc.orders import STATUSES
from ugc.platform.dialect import Row

AUDITOR = "auditor"
AS_OF_MESSAGES = {
    "format": "Ожидается номер версии или время ISO 8601.",
    "timezone": "Укажите часовой пояс (например, Z).",
    "version": "Версия должна быть от 1 до {latest}.",
}

T = TypeVar("T")


# Access --------------------------------------------------------------------------------------


async def _caller(request: Request) -> tuple[Services, int]:
    s = services(request)
    return s, authenticated_user(request, s.tokens)


async def _is_auditor(s: Services, user_id: int) -> bool:
    """Whether the caller audits; their row waited for if the `users` read model lags (api/own_rows.py):
    an auditor is not told 404 for an order they may see."""
    roles: list[str] = (await own_user(s, user_id))["roles"]
    return AUDITOR in roles


async def _visible_order(s: Services, user_id: int, order_id: int) -> Row:
    """The order if the caller takes part in it or audits; 404 otherwise (no existence leaks)."""
    row = await s.run(read.get_order, s.db, order_id)
    if row is None:
        raise errors.not_found("order_not_found")
    if user_id not in (row["buyer_id"], row["creator_id"]) and not await _is_auditor(s, user_id):
        raise errors.not_found("order_not_found")
    return row


async def _command(request: Request, s: Services, user_id: int, run: Callable[..., T], *args: Any) -> tuple[int, T]:
    """Run the caller's command on the order in the path, under `If-Match` and `If-None-Match`.

    The order decides who sees it: an outsider gets 404 from the command itself (ugc.orders
    `Order.check`), as from a read of the order, without that read before every command. An auditor,
    who may see any order, is refused with 403 rather than 404.
    """
    order_id = request.path_params["id"]
    try:
        return order_id, await s.run(run, order_id, user_id, *args, preconditions=preconditions(request))
    except NotFound as missing:
        if missing.code == "order_not_found" and await _is_auditor(s, user_id):
            row = await s.run(read.get_order, s.db, order_id)
            if row is not None:
                raise errors.forbidden() from None
        raise


def _today(s: Services) -> date:
    return s.clock.now().date()


# Endpoints -----------------------------------------------------------------------------------


@idempotent
async def place_order(request: Request) -> Response:
    s, user_id = await _caller(request)
    body = await parse(request, PlaceOrderIn)
    placed = await s.run(
        s.orders.place, user_id, body.service_id, body.requirements, body.delivery_date, body.selected_option_ids
    )
    await s.settle(placed.positions)
    # Rendered from the order as appended: the same fields the read model now holds for it.
    row = placed.order.as_row()
    return versioned(render_order(row, _today(s)), row["version"], 201)


async def list_orders(request: Request) -> Response:
    s, user_id = await _caller(request)
    role = request.query_params.get("role", "").strip() or None
    status = request.query_params.get("status", "").strip() or None
    problems: dict[str, list[str]] = {}
    if role not in (None, "buyer", "creator"):
        problems["role"] = ["Допустимые значения: buyer, creator."]
    if status not in (None, *STATUSES):
        problems["status"] = [f"Допустимые значения: {', '.join(STATUSES)}."]
    if problems:
        raise errors.invalid(problems)
    query = validate(OrderQuery, OrderQuery.from_params(request.query_params))
    filters = read.OrderFilters(status=status, **query.model_dump())
    wanted = page_request(request)
    if role is None and await _is_auditor(s, user_id):
        # An auditor lists every order (with `role`, their own as that party, like anyone).
        page = await read_page_async(s.db, read.list_all_orders(wanted, filters))
    else:
        page = await read_page_async(s.db, read.list_orders(user_id, wanted, role=role, filters=filters))
    today = _today(s)
    return JSON(paginated(request, wanted, page, lambda row: render_order(row, today)))


async def get_order(request: Request) -> Response:
    s, user_id = await _caller(request)
    order_id = request.path_params["id"]
    as_of = _as_of(request)
    row = await _visible_order(s, user_id, order_id)
    if as_of is None:
        return versioned(render_order(row, _today(s)), row["version"])
    then = await s.run(_order_as_of, s, order_id, as_of)
    return versioned(render_order(then, judged_on(as_of, then)), then["version"])


def _as_of(request: Request) -> AsOf | None:
    """The `as_of` query parameter, if any (422 when it is neither a version nor a moment)."""
    text = request.query_params.get("as_of")
    try:
        return None if text is None else parse_as_of(text)
    except BadAsOf as bad:
        raise _invalid_as_of(bad) from None


def _invalid_as_of(bad: BadAsOf) -> Exception:
    return errors.invalid({"as_of": [AS_OF_MESSAGES[bad.reason].format(latest=bad.latest)]})


def _order_as_of(s: Services, order_id: int, as_of: AsOf) -> Row:
    try:
        return order_as_of(s.order_log, order_id, as_of)
    except BadAsOf as bad:
        raise _invalid_as_of(bad) from None


@idempotent
async def update_order(request: Request) -> Response:
    s, user_id = await _caller(request)
    body = await parse(request, UpdateOrderIn)
    _, saved = await _command(request, s, user_id, s.orders.update, body.model_dump(exclude_unset=True))
    await s.settle(saved.positions)
    row = saved.order.as_row()
    return versioned(render_order(row, _today(s)), row["version"])


async def _transition(request: Request, command: str, *args: Any) -> Row:
    """Run the command and settle it; the order as the read model now holds it (rendered from the
    order as appended, as placing's answer is: the same fields, without reading them back)."""
    s, user_id = await _caller(request)
    saved: Saved
    _, saved = await _command(request, s, user_id, getattr(s.orders, command), *args)
    await s.settle(saved.positions)
    return saved.order.as_row()


def _status_answer(row: Row) -> Response:
    return versioned(render_status(row), row["version"])


@idempotent
async def accept(request: Request) -> Response:
    await parse(request, EmptyIn)
    return _status_answer(await _transition(request, "accept"))


@idempotent
async def request_revision(request: Request) -> Response:
    body = await parse(request, RevisionIn)
    return _status_answer(await _transition(request, "request_revision", body.message))


@idempotent
async def approve(request: Request) -> Response:
    await parse(request, EmptyIn)
    row = await _transition(request, "approve")
    return versioned(render_approved(row), row["version"])


@idempotent
async def cancel(request: Request) -> Response:
    body = await parse(request, CancelIn)
    row = await _transition(request, "cancel", body.reason)
    return versioned(render_cancelled(row), row["version"])


@idempotent
async def deliver(request: Request) -> Response:
    s, user_id = await _caller(request)
    body = await parse(request, DeliverIn)
    _, (delivered, saved) = await _command(request, s, user_id, s.orders.deliver, body.message, body.file_ids)
    await s.settle(saved.positions)
    row = delivered.as_row()
    files = await s.run(read.files_by_id, s.db, row["file_ids"]) if row["file_ids"] else {}
    return JSON(render_delivery(s.settings.public_url, row, files), status_code=201)


async def deliveries(request: Request) -> Response:
    s, user_id = await _caller(request)
    order_id = request.path_params["id"]
    await _visible_order(s, user_id, order_id)
    wanted = page_request(request)
    page = await read_page_async(s.db, read.page_of_deliveries(order_id, wanted))
    files = await s.run(read.files_by_id, s.db, sorted({f for r in page.rows for f in r["file_ids"]}))
    return JSON(paginated(request, wanted, page, lambda row: render_delivery(s.settings.public_url, row, files)))


@idempotent
async def review(request: Request) -> Response:
    s, user_id = await _caller(request)
    body = await parse(request, ReviewIn)
    _, (reviewed, saved) = await _command(request, s, user_id, s.orders.review, body.rating, body.content)
    await s.settle(saved.positions)
    return JSON(render_review(reviewed.as_row()), status_code=201)


async def creator_reviews(request: Request) -> Response:
    s = services(request)
    creator = request.path_params["creator_id"]
    if await s.run(get_creator_profile, s.db, creator) is None:  # as its own page: no empty list
        raise errors.not_found()
    wanted = page_request(request)
    page = await read_page_async(s.db, read.list_reviews(creator, wanted))
    return JSON(paginated(request, wanted, page, render_review))


async def history(request: Request) -> Response:
    s, user_id = await _caller(request)
    order_id = request.path_params["id"]
    as_of = _as_of(request)
    # Every page of a history reads the order's whole log and slices it: a deep page costs what the
    # first does, and an auditor must reach every event however many there are.
    wanted = page_request(request, max_depth=None)
    await _visible_order(s, user_id, order_id)
    try:
        entries = await s.run(order_record, s.order_log, order_id, as_of)
    except BadAsOf as bad:
        raise _invalid_as_of(bad) from None
    page = Page(rows=entries[wanted.offset : wanted.offset + wanted.size], count=len(entries))
    return JSON(paginated(request, wanted, page, lambda entry: entry))


routes = [
    endpoint(
        "POST",
        "/api/v1/orders/",
        place_order,
        Operation("Создание заказа", PlaceOrderIn, OrderOut, status=201, who="buyer", etag=True),
    ),
    endpoint(
        "GET",
        "/api/v1/orders/",
        list_orders,
        Operation(
            "Заказы пользователя (как покупателя и как креатора); аудитору — все заказы",
            response=OrderOut,
            paginated=True,
            query=("status", "role", "buyer", "creator", "created_after", "created_before"),
        ),
    ),
    endpoint(
        "GET",
        "/api/v1/orders/{id:id}/",
        get_order,
        Operation(
            "Заказ (as_of — состояние на версию или момент времени)", response=OrderOut, query=("as_of",), etag=True
        ),
    ),
    endpoint(
        "PATCH",
        "/api/v1/orders/{id:id}/",
        update_order,
        Operation(
            "Изменение заказа",
            UpdateOrderIn,
            OrderOut,
            who="participant",
            conflict="state",
            preconditions=True,
            etag=True,
        ),
    ),
    endpoint(
        "POST",
        "/api/v1/orders/{id:id}/accept/",
        accept,
        Operation(
            "Принять заказ", EmptyIn, StatusOut, who="participant", conflict="state", preconditions=True, etag=True
        ),
    ),
    endpoint(
        "POST",
        "/api/v1/orders/{id:id}/request-revision/",
        request_revision,
        Operation(
            "Запросить доработку",
            RevisionIn,
            StatusOut,
            who="participant",
            conflict="state",
            preconditions=True,
            etag=True,
        ),
    ),
    endpoint(
        "POST",
        "/api/v1/orders/{id:id}/approve/",
        approve,
        Operation(
            "Подтверждение доставки",
            EmptyIn,
            ApprovedOut,
            who="participant",
            conflict="state",
            preconditions=True,
            etag=True,
        ),
    ),
    endpoint(
        "POST",
        "/api/v1/orders/{id:id}/cancel/",
        cancel,
        Operation(
            "Отмена заказа", CancelIn, CancelledOut, who="participant", conflict="state", preconditions=True, etag=True
        ),
    ),
    endpoint(
        "POST",
        "/api/v1/orders/{id:id}/deliveries/",
        deliver,
        Operation(
            "Добавление доставки к заказу",
            DeliverIn,
            DeliveryOut,
            status=201,
            who="participant",
            conflict="state",
            preconditions=True,
        ),
    ),
    endpoint(
        "GET",
        "/api/v1/orders/{id:id}/deliveries/",
        deliveries,
        Operation("Доставки заказа, старые первыми", response=DeliveryOut, paginated=True),
    ),
    endpoint(
        "POST",
        "/api/v1/orders/{id:id}/reviews/",
        review,
        Operation(
            "Создание отзыва",
            ReviewIn,
            ReviewOut,
            status=201,
            who="participant",
            conflict="state",
            preconditions=True,
        ),
    ),
    endpoint(
        "GET",
        "/api/v1/orders/{id:id}/history/",
        history,
        Operation(
            "История событий заказа (as_of — до версии или момента времени)",
            response=HistoryEntry,
            paginated=True,
            query=("as_of",),
        ),
    ),
    endpoint(
        "GET",
        "/api/v1/creators/{creator_id:id}/reviews/",
        creator_reviews,
        Operation("Отзывы о креаторе", response=ReviewOut, auth=False, paginated=True),
    ),
]
