from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints

from api.ids import FormId
from api.schemas.out import Out, Row
from api.schemas.patch import PatchIn
from ugc.platform.numbers import natural

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Caption = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
MAX_ORDER = 1_000_000


_ORDER_REFUSED = f"Порядок должен быть целым числом от 0 до {MAX_ORDER}."


def _order(value: Any) -> int:
    """A JSON integer, or a form field's text of ASCII digits alone: "3" is 3, and "1_0", "+5" or
    " 3 ", which int() would read, are refused, as are true and 4.0."""
    number = natural(value, MAX_ORDER) if isinstance(value, str) else value
    if type(number) is not int or not 0 <= number <= MAX_ORDER:
        raise ValueError(_ORDER_REFUSED)
    return number


Order = Annotated[int, Field(ge=0, le=MAX_ORDER), BeforeValidator(_order)]


class PortfolioItemIn(BaseModel):
    """POST and PUT; `cover_image` is the form's file part (required on POST, optional on PUT)."""

    title: Title
    description: Description = ""


class PortfolioItemPatchIn(PatchIn):
    title: Title | None = None
    description: Description | None = None


class PortfolioImageIn(BaseModel):
    """POST; `image` is the form's file part."""

    portfolio_item: FormId
    caption: Caption = ""
    order: Order = 0


class PortfolioImagePatchIn(PatchIn):
    """PUT and PATCH: every field optional, the image too (as the spec's PUT has it)."""

    caption: Caption | None = None
    order: Order | None = None


def media_url(public_url: str, key: str) -> str:
    """A cover's or an image's public URL (api/routes/media.py serves it)."""
    return f"{public_url}/media/portfolio/{key}"


class PortfolioImageOut(Out):
    id: int
    image: str
    caption: str
    order: int
    portfolio_item: int


def render_image(public_url: str, row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "image": media_url(public_url, row["image_key"]),
        "caption": row["caption"],
        "order": row["sort_order"],
        "portfolio_item": row["portfolio_item_id"],
    }


class EmbeddedImageOut(Out):
    """An image inside its item (the item names it no more)."""

    id: int
    image: str
    caption: str
    order: int


class PortfolioItemOut(Out):
    id: int
    title: str
    description: str
    cover_image: str
    images: list[EmbeddedImageOut]
    created_at: datetime
    updated_at: datetime
    creator_profile: int


def render_item(public_url: str, row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "cover_image": media_url(public_url, row["cover_key"]),
        "images": [
            {
                "id": image["id"],
                "image": media_url(public_url, image["key"]),
                "caption": image["caption"],
                "order": image["order"],
            }
            for image in row["images"]
        ],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "creator_profile": row["creator_profile_id"],
    }
