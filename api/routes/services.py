"""Services: creators offer, edit and deactivate them; anyone lists and reads them.

Also the legacy `GET /api/services/{id}/`, the spec's older shape of the same read row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.body import parse, validate
from api.idempotency import idempotent
from api.listing import Answer
from api.openapi import Operation, endpoint
from api.pagination import page_request, paginated
from api.responses import dumps
from api.schemas.services import (
    LegacyServiceOut,
    OptionIn,
    ServiceIn,
    ServiceOut,
    ServicePatchIn,
    ServiceQuery,
    render_legacy,
    render_service,
)
from api.services import Services, services
from api.versions import etag, preconditions, versioned
from commands.services import OfferService
from readmodels.services import ListingState, get_service, list_services
from ugc.platform.dialect import Row
from ugc.platform.numbers import MAX_ID
from ugc.services import OptionDraft


def _drafts(options: list[OptionIn]) -> list[OptionDraft]:
    return [OptionDraft(name=o.name, description=o.description, price=o.price, id=o.id) for o in options]


def _service_number(request: Request) -> int:
    number: int = request.path_params["id"]
    if number > MAX_ID:
        raise errors.not_found()
    return number


async def _row(s: Services, number: int) -> Row:
    found = await s.run(get_service, s.db, number)
    if found is None:
        raise errors.not_found()
    return found[0]


def _answer(row: Row, status_code: int = 200) -> Response:
    return versioned(render_service(row), row["version"], status_code)


@idempotent
async def create(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    body = await parse(request, ServiceIn, decimals=True)
    command = OfferService(
        title=body.title,
        description=body.description,
        category_id=body.category_id,
        base_price=body.base_price,
        delivery_time=body.delivery_time,
        options=_drafts(body.options),
        tags=body.tags,
        allows_modifications=body.allows_modifications,
        modifications_price=body.modifications_price,
    )
    number, positions = await s.run(s.services.offer, user_id, command)
    await s.settle(positions)
    return _answer(await _row(s, number), status_code=201)


async def listing(request: Request) -> Response:
    s = services(request)

    async def read() -> tuple[Answer, ListingState]:
        query = validate(ServiceQuery, ServiceQuery.from_params(request.query_params))
        wanted = page_request(request)
        page, state = await s.run(list_services, s.db, query.filters(), wanted, s.listing.totals)
        return (dumps(paginated(request, wanted, page, render_service)), {}), state

    return await s.listing.answer(request, read)


async def _remembered_service(request: Request, render: Callable[[Row], dict[str, Any]]) -> Response:
    s = services(request)
    number = _service_number(request)

    async def read() -> tuple[Answer, ListingState]:
        found = await s.run(get_service, s.db, number)
        if found is None:
            raise errors.not_found()
        row, state = found
        body = dumps(render(row))
        return (body, etag(row["version"], body)), state

    return await s.listing.answer(request, read)


async def detail(request: Request) -> Response:
    return await _remembered_service(request, render_service)


async def legacy_detail(request: Request) -> Response:
    return await _remembered_service(request, render_legacy)


@idempotent
async def update(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    body = await parse(request, ServicePatchIn, decimals=True)
    number = _service_number(request)
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if "options" in changes:
        changes["options"] = _drafts(changes["options"])
    positions = await s.run(s.services.edit, user_id, number, changes, preconditions=preconditions(request))
    await s.settle(positions)
    return _answer(await _row(s, number))


@idempotent
async def deactivate(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    positions = await s.run(
        s.services.deactivate, user_id, _service_number(request), preconditions=preconditions(request)
    )
    await s.settle(positions)
    return Response(status_code=204)


LISTING_QUERY = ("category", "creator", "search", "min_price", "max_price", "ordering")

routes = [
    endpoint(
        "POST",
        "/api/v1/services/",
        create,
        Operation("Создание сервиса (только креаторы)", ServiceIn, ServiceOut, status=201, who="creator", etag=True),
    ),
    endpoint(
        "GET",
        "/api/v1/services/",
        listing,
        Operation("Список активных сервисов", response=ServiceOut, auth=False, paginated=True, query=LISTING_QUERY),
    ),
    endpoint(
        "GET",
        "/api/v1/services/{id:id}/",
        detail,
        Operation("Детали сервиса", response=ServiceOut, auth=False, etag=True),
    ),
    endpoint(
        "PATCH",
        "/api/v1/services/{id:id}/",
        update,
        Operation("Изменение своего сервиса", ServicePatchIn, ServiceOut, who="owner", preconditions=True, etag=True),
    ),
    endpoint(
        "DELETE",
        "/api/v1/services/{id:id}/",
        deactivate,
        Operation("Деактивация своего сервиса (остается доступным по id)", status=204, who="owner", preconditions=True),
    ),
    endpoint(
        "GET",
        "/api/services/{id:id}/",
        legacy_detail,
        Operation("Детальная информация об услуге (прежний формат)", response=LegacyServiceOut, auth=False, etag=True),
    ),
]
