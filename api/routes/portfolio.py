"""Portfolio items and their images: public to read, written only by the creator who owns them.

Writes are multipart forms whose file part (`cover_image`, `image`) must be an image by its bytes;
an update without a new file may also come as JSON. The bytes are stored before the command
runs and removed again if it fails, so no stored image lacks its event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user, bearer_token
from api.ids import query_id
from api.image_forms import form_fields, image_form
from api.openapi import FormField, Operation, endpoint
from api.pagination import page_request, paginated
from api.responses import JSON
from api.schemas.portfolio import (
    PortfolioImageIn,
    PortfolioImageOut,
    PortfolioImagePatchIn,
    PortfolioItemIn,
    PortfolioItemOut,
    PortfolioItemPatchIn,
)
from api.services import Services, services
from api.uploads import ReceivedFile
from commands.portfolio import PortfolioCommands, StoredImage
from commands.saving import Positions
from readmodels.creators import get_creator_profile_of_user
from readmodels.pages import Page, read_page_async
from readmodels.portfolio import get_portfolio_image, get_portfolio_item, list_portfolio_images, list_portfolio_items
from ugc.database import Row


def media_url(s: Services, key: str) -> str:
    return f"{s.settings.public_url}/media/portfolio/{key}"


def render_item(s: Services, row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "cover_image": media_url(s, row["cover_key"]),
        "images": [
            {
                "id": image["id"],
                "image": media_url(s, image["key"]),
                "caption": image["caption"],
                "order": image["order"],
            }
            for image in row["images"]
        ],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "creator_profile": row["creator_profile_id"],
    }


def render_image(s: Services, row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "image": media_url(s, row["image_key"]),
        "caption": row["caption"],
        "order": row["sort_order"],
        "portfolio_item": row["portfolio_item_id"],
    }


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
    return JSON(paginated(request, wanted, page, lambda row: render_item(s, row)))


async def item(request: Request) -> Response:
    s = services(request)
    return JSON(await _item(s, request.path_params["id"]))


async def create_item(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    async with image_form(request, s, user_id, "cover_image", file_required=True) as (fields, cover):
        body = form_fields(PortfolioItemIn, fields, missing_file="cover_image" if cover is None else None)
        assert cover is not None
        number, positions = await s.run(
            s.portfolio.create_item, user_id, title=body.title, description=body.description, cover=_stored(cover)
        )
    await s.settle(positions)
    return JSON(await _item(s, number), status_code=201)


async def replace_item(request: Request) -> Response:
    return await _update(request, PortfolioItemIn, "cover_image", PortfolioCommands.update_item, _item)


async def update_item(request: Request) -> Response:
    return await _update(request, PortfolioItemPatchIn, "cover_image", PortfolioCommands.update_item, _item)


async def delete_item(request: Request) -> Response:
    return await _delete(request, PortfolioCommands.delete_item)


async def _item(s: Services, number: int) -> dict[str, Any]:
    row = await s.run(get_portfolio_item, s.db, number)
    if row is None:
        raise errors.not_found("portfolio_item_not_found")
    return render_item(s, row)


# Images ------------------------------------------------------------------------------------------


async def list_images(request: Request) -> Response:
    s = services(request)
    authenticated_user(request, s.tokens)
    portfolio_item = query_id(request, "portfolio_item_id")
    wanted = page_request(request)
    page = await read_page_async(s.db, list_portfolio_images(wanted, portfolio_item))
    return JSON(paginated(request, wanted, page, lambda row: render_image(s, row)))


async def add_image(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    async with image_form(request, s, user_id, "image", file_required=True) as (fields, image):
        body = form_fields(PortfolioImageIn, fields, missing_file="image" if image is None else None)
        assert image is not None
        number, positions = await s.run(
            s.portfolio.add_image,
            user_id,
            portfolio_item=body.portfolio_item,
            image=_stored(image),
            caption=body.caption,
            order=body.order,
        )
    await s.settle(positions)
    return JSON(await _image(s, number), status_code=201)


async def update_image(request: Request) -> Response:
    return await _update(request, PortfolioImagePatchIn, "image", PortfolioCommands.update_image, _image)


async def remove_image(request: Request) -> Response:
    return await _delete(request, PortfolioCommands.remove_image)


async def _image(s: Services, number: int) -> dict[str, Any]:
    row = await s.run(get_portfolio_image, s.db, number)
    if row is None:
        raise errors.not_found("portfolio_image_not_found")
    return render_image(s, row)


# Items and images alike --------------------------------------------------------------------------

UpdateIn = PortfolioItemIn | PortfolioItemPatchIn | PortfolioImagePatchIn
UpdateCommand = Callable[[PortfolioCommands, int, int, dict[str, Any], StoredImage | None], Positions]


async def _update(
    request: Request,
    model: type[UpdateIn],
    file_field: str,
    command: UpdateCommand,
    answer: Callable[[Services, int], Awaitable[dict[str, Any]]],
) -> Response:
    """Change the fields sent, and the image when a new file comes; answer with the whole of it."""
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    async with image_form(request, s, user_id, file_field, file_required=False) as (fields, file):
        body = form_fields(model, fields)
        number = request.path_params["id"]
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        new_file = _stored(file) if file is not None else None
        positions = await s.run(command, s.portfolio, user_id, number, changes, new_file)
    await s.settle(positions)
    return JSON(await answer(s, number))


async def _delete(request: Request, command: Callable[[PortfolioCommands, int, int], Positions]) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    positions = await s.run(command, s.portfolio, user_id, request.path_params["id"])
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
            "Элементы портфолио", response=PortfolioItemOut, auth=False, paginated=True, query=("creator_profile_id",)
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
            form=(
                FormField("title", required=True),
                FormField("description"),
                FormField("cover_image", "file", required=True),
            ),
        ),
    ),
    endpoint(
        "GET", "/api/portfolio/{id:id}/", item, Operation("Элемент портфолио", response=PortfolioItemOut, auth=False)
    ),
    endpoint(
        "PUT",
        "/api/portfolio/{id:id}/",
        replace_item,
        Operation(
            "Обновление элемента портфолио",
            response=PortfolioItemOut,
            form=(FormField("title"), FormField("description"), FormField("cover_image", "file")),
        ),
    ),
    endpoint(
        "PATCH",
        "/api/portfolio/{id:id}/",
        update_item,
        Operation(
            "Частичное обновление элемента портфолио",
            response=PortfolioItemOut,
            form=(FormField("title"), FormField("description"), FormField("cover_image", "file")),
        ),
    ),
    endpoint("DELETE", "/api/portfolio/{id:id}/", delete_item, Operation("Удаление элемента портфолио", status=204)),
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
            form=(
                FormField("portfolio_item", "integer", required=True),
                FormField("image", "file", required=True),
                FormField("caption"),
                FormField("order", "integer"),
            ),
        ),
    ),
    endpoint(
        "PUT",
        "/api/portfolio-images/{id:id}/",
        update_image,
        Operation(
            "Обновление изображения",
            response=PortfolioImageOut,
            form=(FormField("caption"), FormField("order", "integer"), FormField("image", "file")),
        ),
    ),
    endpoint(
        "PATCH",
        "/api/portfolio-images/{id:id}/",
        update_image,
        Operation(
            "Частичное обновление изображения",
            response=PortfolioImageOut,
            form=(FormField("caption"), FormField("order", "integer"), FormField("image", "file")),
        ),
    ),
    endpoint("DELETE", "/api/portfolio-images/{id:id}/", remove_image, Operation("Удаление изображения", status=204)),
]
