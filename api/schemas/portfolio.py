from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, StringConstraints

from api.ids import public_id
from api.schemas.out import Out
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


class PortfolioImageOut(Out):
    id: int
    image: str
    caption: str
    order: int
    portfolio_item: int


class EmbeddedImageOut(Out):
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
