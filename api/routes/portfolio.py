"""Portfolio items and their images: public to read, written only by the creator who owns them.

Writes are multipart forms whose file part (`cover_image`, `image`) must be an image by its bytes;
an update without a new file may also come as JSON. The bytes are stored before the command
runs and removed again if it fails, so no stored image lacks its event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user, bearer_token
from api.idempotency import idempotent, idempotent_upload
from api.image_forms import form_fields, image_form
from api.openapi import FormField, Operation, endpoint
from api.pagination import page_request, paginated
from api.query import query_id
from api.responses import JSON
from api.schemas.portfolio import (
    PortfolioImageIn,
    PortfolioImageOut,
    PortfolioImagePatchIn,
    PortfolioItemIn,
    PortfolioItemOut,
    PortfolioItemPatchIn,
    render_image,
    render_item,
)
from api.services import Services, services
from api.uploads import ReceivedFile
from api.versions import preconditions, versioned
from commands.portfolio import Kind, Saved, StoredImage
from readmodels.creators import get_creator_profile_of_user
from readmodels.pages import Page, read_page_async
from readmodels.portfolio import (
    get_portfolio_item,
    list_portfolio_images,
    list_portfolio_items,
    portfolio_item_images,
)
from ugc.platform.database import Database
from ugc.platform.dialect import Row


@dataclass(frozen=True)
class Piece:
    """What items and images differ in, for the code below that treats them alike."""

    kind: Kind
    render: Callable[[str, Row], dict[str, Any]]  # (public URL, row)
    file_field: str
    # What its answer shows of other aggregates (an item's images), from the read model: (db, its id).
    embedded: Callable[[Database, int], Row] | None = None


ITEM = Piece("item", render_item, "cover_image", portfolio_item_images)
IMAGE = Piece("image", render_image, "image")


# Items -------------------------------------------------------------------------------------------


async def list_items(request: Request) -> Response:
    """`?creator_profile_id=` for anyone's portfolio; without it, a signed-in caller's own, else all."""
    s = services(request)
    profile = query_id(request, "creator_profile_id")
    wanted = page_request(request)
    if profile is None and bearer_token(request) is not None:
        own = await s.run(get_creator_profile_of_user, s.db, authenticated_user(request, s.tokens))
        if own is None:
            return JSON(paginated(request, wanted, Page(rows=[], count=0), lambda row: row))
        profile = own["id"]
    page = await read_page_async(s.db, list_portfolio_items(wanted, profile))
    public_url = s.settings.public_url
    return JSON(paginated(request, wanted, page, lambda row: render_item(public_url, row)))


async def item(request: Request) -> Response:
    s = services(request)
    row = await s.run(get_portfolio_item, s.db, request.path_params["id"])
    if row is None:
        raise errors.not_found("portfolio_item_not_found")
    return _answer(s, ITEM, row)


@idempotent_upload
async def create_item(request: Request) -> Response:
    def run(s: Services, user_id: int, body: PortfolioItemIn, cover: StoredImage) -> Saved:
        return s.portfolio.create_item(user_id, title=body.title, description=body.description, cover=cover)

    return await _create(request, ITEM, PortfolioItemIn, run)


@idempotent_upload
async def replace_item(request: Request) -> Response:
    return await _update(request, ITEM, PortfolioItemIn)


@idempotent_upload
async def update_item(request: Request) -> Response:
    return await _update(request, ITEM, PortfolioItemPatchIn)


@idempotent
async def delete_item(request: Request) -> Response:
    return await _delete(request, ITEM)


# Images ------------------------------------------------------------------------------------------


async def list_images(request: Request) -> Response:
    s = services(request)
    authenticated_user(request, s.tokens)
    portfolio_item = query_id(request, "portfolio_item_id")
    wanted = page_request(request)
    page = await read_page_async(s.db, list_portfolio_images(wanted, portfolio_item))
    public_url = s.settings.public_url
    return JSON(paginated(request, wanted, page, lambda row: render_image(public_url, row)))


@idempotent_upload
async def add_image(request: Request) -> Response:
    def run(s: Services, user_id: int, body: PortfolioImageIn, image: StoredImage) -> Saved:
        return s.portfolio.add_image(
            user_id, portfolio_item=body.portfolio_item, image=image, caption=body.caption, order=body.order
        )

    return await _create(request, IMAGE, PortfolioImageIn, run)


@idempotent_upload
async def update_image(request: Request) -> Response:
    return await _update(request, IMAGE, PortfolioImagePatchIn)


@idempotent
async def remove_image(request: Request) -> Response:
    return await _delete(request, IMAGE)


# Items and images alike --------------------------------------------------------------------------

CreateIn = TypeVar("CreateIn", PortfolioItemIn, PortfolioImageIn)
UpdateIn = PortfolioItemIn | PortfolioItemPatchIn | PortfolioImagePatchIn


def _answer(s: Services, piece: Piece, row: Row, status_code: int = 200) -> Response:
    """The item or image in `row`, with its version as the ETag."""
    return versioned(piece.render(s.settings.public_url, row), row["version"], status_code)


async def _answer_saved(s: Services, piece: Piece, saved: Saved, status_code: int = 200) -> Response:
    """The item or image as the command appended it, once the read model has it. Read back, it could
    be gone already (404 for a change that was saved) when its deletion followed at once."""
    await s.settle(saved.positions)
    row = saved.piece.as_row()
    if piece.embedded is not None:
        row |= await s.run(piece.embedded, s.db, saved.piece.number)
    return _answer(s, piece, row, status_code)


async def _create(
    request: Request,
    piece: Piece,
    model: type[CreateIn],
    run: Callable[[Services, int, CreateIn, StoredImage], Saved],
) -> Response:
    """A form whose image is required: a missing one is reported with the fields' problems."""
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    async with image_form(request, s, user_id, piece.file_field, file_required=True) as received:
        file = received.file
        body = form_fields(model, received, missing_file=piece.file_field if file is None else None)
        assert file is not None
        saved = await file.record(s.run(run, s, user_id, body, _stored(file)))
    return await _answer_saved(s, piece, saved, status_code=201)


async def _update(request: Request, piece: Piece, model: type[UpdateIn]) -> Response:
    """Change the fields sent, and the image when a new file comes; answer with the whole of it."""
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    async with image_form(request, s, user_id, piece.file_field, file_required=False) as received:
        file = received.file
        body = form_fields(model, received)
        number = request.path_params["id"]
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        new_file = _stored(file) if file is not None else None
        command = s.run(
            s.portfolio.update,
            piece.kind,
            user_id,
            number,
            changes,
            new_file,
            preconditions=preconditions(request),
        )
        saved = await (file.record(command) if file is not None else command)
    return await _answer_saved(s, piece, saved)


async def _delete(request: Request, piece: Piece) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    positions = await s.run(
        s.portfolio.delete, piece.kind, user_id, request.path_params["id"], preconditions=preconditions(request)
    )
    await s.settle(positions)
    return Response(status_code=204)


def _stored(file: ReceivedFile) -> StoredImage:
    return StoredImage(key=file.key, content_type=file.content_type)


routes = [
    endpoint(
        "GET",
        "/api/portfolio/",
        list_items,
        Operation(
            "Элементы портфолио (без creator_profile_id и с токеном — свои)",
            response=PortfolioItemOut,
            auth="optional",
            paginated=True,
            query=("creator_profile_id",),
        ),
    ),
    endpoint(
        "POST",
        "/api/portfolio/",
        create_item,
        Operation(
            "Создание элемента портфолио",
            response=PortfolioItemOut,
            status=201,
            who="creator",
            etag=True,
            form=(FormField("cover_image", required=True),),
            form_model=PortfolioItemIn,
        ),
    ),
    endpoint(
        "GET",
        "/api/portfolio/{id:id}/",
        item,
        Operation("Элемент портфолио", response=PortfolioItemOut, auth=False, etag=True),
    ),
    endpoint(
        "PUT",
        "/api/portfolio/{id:id}/",
        replace_item,
        Operation(
            "Обновление элемента портфолио",
            response=PortfolioItemOut,
            who="owner",
            preconditions=True,
            etag=True,
            form=(FormField("cover_image"),),
            form_model=PortfolioItemIn,
        ),
    ),
    endpoint(
        "PATCH",
        "/api/portfolio/{id:id}/",
        update_item,
        Operation(
            "Частичное обновление элемента портфолио",
            response=PortfolioItemOut,
            who="owner",
            preconditions=True,
            etag=True,
            form=(FormField("cover_image"),),
            form_model=PortfolioItemPatchIn,
        ),
    ),
    endpoint(
        "DELETE",
        "/api/portfolio/{id:id}/",
        delete_item,
        Operation("Удаление элемента портфолио", status=204, who="owner", preconditions=True),
    ),
    endpoint(
        "GET",
        "/api/portfolio-images/",
        list_images,
        Operation(
            "Изображения элемента портфолио", response=PortfolioImageOut, paginated=True, query=("portfolio_item_id",)
        ),
    ),
    endpoint(
        "POST",
        "/api/portfolio-images/",
        add_image,
        Operation(
            "Добавление изображения к элементу портфолио",
            response=PortfolioImageOut,
            status=201,
            who="owner",
            etag=True,
            form=(FormField("image", required=True),),
            form_model=PortfolioImageIn,
        ),
    ),
    endpoint(
        "PUT",
        "/api/portfolio-images/{id:id}/",
        update_image,
        Operation(
            "Обновление изображения",
            response=PortfolioImageOut,
            who="owner",
            preconditions=True,
            etag=True,
            form=(FormField("image"),),
            form_model=PortfolioImagePatchIn,
        ),
    ),
    endpoint(
        "PATCH",
        "/api/portfolio-images/{id:id}/",
        update_image,
        Operation(
            "Частичное обновление изображения",
            response=PortfolioImageOut,
            who="owner",
            preconditions=True,
            etag=True,
            form=(FormField("image"),),
            form_model=PortfolioImagePatchIn,
        ),
    ),
    endpoint(
        "DELETE",
        "/api/portfolio-images/{id:id}/",
        remove_image,
        Operation("Удаление изображения", status=204, who="owner", preconditions=True),
    ),
]
