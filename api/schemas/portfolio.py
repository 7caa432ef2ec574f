from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints

from api.ids import public_id
from api.schemas.out import Out, Row
from api.schemas.patch import PatchIn

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Caption = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
MAX_ORDER = 1_000_000


def _order(value: int) -> int:
    if not 0 <= value <= MAX_ORDER:
        raise ValueError(f"Порядок должен быть целым числом от 0 до {MAX_ORDER}.")
    return value


# Form fields arrive as text, so "3" is a number here (lax), unlike in JSON-only bodies.
Order = Annotated[int, AfterValidator(_order)]


class PortfolioItemIn(BaseModel):
    """POST and PUT; `cover_image` is the form's file part (required on POST, optional on PUT)."""

    title: Title
    description: Description = ""


class PortfolioItemPatchIn(PatchIn):
    title: Title | None = None
    description: Description | None = None


class PortfolioImageIn(BaseModel):
    """POST; `image` is the form's file part."""

    # Form fields are text: the digits are parsed (lax, as for `order`), then held to an id's bounds.
    portfolio_item: Annotated[int, AfterValidator(public_id)]
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
