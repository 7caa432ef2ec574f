"""Services on the wire: what a creator sends, what clients read, and the listing's query string.

The v1 shape names the category by `category_id`, the same field the request sends, so what a
creator POSTs is what everyone GETs (categories themselves: `GET /api/v1/categories/`). Money is a
`Decimal` from the request's digits to the response's number; only the legacy shape writes decimal
strings, as the spec's example does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from api.errors import message
from api.ids import PublicId, public_id
from api.query import TOO_MANY_WORDS
from api.schemas.out import Number, Out, Row
from api.schemas.patch import PatchIn
from readmodels.folding import MAX_SEARCH_WORDS, search_words
from readmodels.services import DEFAULT_ORDERING, ORDERINGS, ServiceFilters
from ugc.platform.numbers import natural

MAX_PRICE = Decimal(100_000_000)
# What a NUMERIC(14, 2) column can hold: a filter beyond it is a typo, not a wish.
MAX_FILTER_PRICE = Decimal(10**12)
MAX_SEARCH_LENGTH = 100
CENT = Decimal("0.01")


def _decimal(value: Any) -> Decimal:
    """A number (an int, or a Decimal the body parser made from the JSON digits) or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError("Ожидается число.")
    # Decimal() would read "١٢٣" as 123, and "1_000" (Python's digit grouping) as 1000.
    if isinstance(value, str) and not (value.isascii() and "_" not in value):
        raise ValueError("Ожидается число.")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError("Ожидается число.") from None
    if not number.is_finite():
        raise ValueError("Ожидается число.")
    return number


def _amount(value: Decimal) -> Decimal:
    """Bounded first: quantizing a number like 1e999999999 would overflow the decimal context."""
    if value > MAX_PRICE:
        raise ValueError(f"Значение не может быть больше {MAX_PRICE}.")
    if value != value.quantize(CENT):
        raise ValueError("Не более 2 знаков после запятой.")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("Значение должно быть больше 0.")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("Значение не может быть отрицательным.")
    return value


def _at_most(limit: int, what: str) -> Any:
    """At most `limit` items, counted before any item is validated: after, a 1 MB body of 349,000
    empty options cost 8.6 s of the event loop and ~1 GB for their 698,000 errors (a 42.7 MB 422)."""

    def check(items: Any) -> Any:
        if isinstance(items, list) and len(items) > limit:
            raise ValueError(f"Не более {limit} {what}.")
        return items

    return BeforeValidator(check)


def _between(low: int, high: int) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"Значение должно быть от {low} до {high}.")
        return value

    return AfterValidator(check)


# The sign is checked before the amount, so the amount's bound also holds below zero.
# The document says what the validators hold (a number, its bounds, two decimals), not what a bare
# Decimal would be in JSON Schema (a number or a numeric string, unbounded).
_MONEY = "Число, не более 2 знаков после запятой."
Price = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    AfterValidator(_positive),
    AfterValidator(_amount),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": int(MAX_PRICE), "description": _MONEY}),
]
Charge = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    AfterValidator(_not_negative),
    AfterValidator(_amount),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": int(MAX_PRICE), "description": _MONEY}),
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
DeliveryDays = Annotated[StrictInt, _between(1, 365), Field(json_schema_extra={"minimum": 1, "maximum": 365})]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Tags = Annotated[list[Tag], _at_most(20, "тегов"), Field(json_schema_extra={"maxItems": 20})]


class OptionIn(BaseModel):
    id: PublicId | None = Field(default=None, description="Only to keep an option the service already has.")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    price: Charge


Options = Annotated[list[OptionIn], _at_most(20, "опций"), Field(json_schema_extra={"maxItems": 20})]


class ServiceIn(BaseModel):
    title: Title
    description: Description
    category_id: PublicId
    base_price: Price
    delivery_time: DeliveryDays = Field(description="Days to deliver, 1 to 365.")
    options: Options = Field(default_factory=list)
    tags: Tags = Field(default_factory=list)
    allows_modifications: StrictBool = True
    modifications_price: Charge = Field(default=Decimal(0), json_schema_extra={"default": 0})


class ServicePatchIn(PatchIn):
    """Any subset of ServiceIn's fields; `options`, when sent, replaces the list (send `id` to keep one)."""

    title: Title | None = None
    description: Description | None = None
    category_id: PublicId | None = None
    base_price: Price | None = None
    delivery_time: DeliveryDays | None = None
    options: Options | None = None
    tags: Tags | None = None
    allows_modifications: StrictBool | None = None
    modifications_price: Charge | None = None


class OptionOut(Out):
    id: int
    name: str
    description: str
    price: Number


class ServiceCreator(Out):
    """A service's creator: `OrderCreator`'s fields plus the current `rating`, to choose by.

    An order's creator has no rating: an order keeps the terms it was placed on, while a rating
    moves with every review (and copying it into every order would rewrite them all).
    """

    id: int = Field(description="The creator profile's id (as in /api/v1/creators/{id}/).")
    user_id: int = Field(description="The creator's user id.")
    username: str
    rating: Number = Field(description="The mean of the creator's review ratings, 0 before the first review.")


class ServiceOut(Out):
    id: int
    title: str
    description: str
    category_id: int
    creator: ServiceCreator
    base_price: Number
    delivery_time: int
    options: list[OptionOut]
    tags: list[str]
    allows_modifications: bool
    modifications_price: Number
    is_active: bool
    created_at: datetime
    updated_at: datetime


def render_service(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "category_id": row["category_id"],
        "creator": {
            "id": row["creator_profile_id"],
            "user_id": row["creator_user_id"],
            "username": row["creator_username"],
            "rating": row["creator_rating"],
        },
        "base_price": row["base_price"],
        "delivery_time": row["delivery_time"],
        "options": [
            {
                "id": option["id"],
                "name": option["name"],
                "description": option["description"],
                "price": Decimal(option["price"]),
            }
            for option in row["options"]
        ],
        "tags": row["tags"],
        "allows_modifications": bool(row["allows_modifications"]),
        "modifications_price": row["modifications_price"],
        "is_active": bool(row["is_active"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class LegacyServiceOut(Out):
    """`GET /api/services/{id}/`: the spec's older shape, money as decimal strings."""

    id: int
    creator_profile: int
    creator_username: str
    title: str
    description: str
    price: str = Field(examples=["1000.00"])
    estimated_time: str = Field(examples=["7 дней"], description="delivery_time in days, in Russian words.")
    allows_modifications: bool
    modifications_price: str = Field(examples=["0.00"])
    is_active: bool
    created_at: datetime
    updated_at: datetime


def days(count: int) -> str:
    """'1 день', '3 дня', '7 дней', '21 день': the legacy `estimated_time` of `delivery_time` days."""
    if count % 10 == 1 and count % 100 != 11:
        word = "день"
    elif count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14):
        word = "дня"
    else:
        word = "дней"
    return f"{count} {word}"


def render_legacy(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "creator_profile": row["creator_profile_id"],
        "creator_username": row["creator_username"],
        "title": row["title"],
        "description": row["description"],
        "price": f"{row['base_price']:.2f}",
        "estimated_time": days(row["delivery_time"]),
        "allows_modifications": bool(row["allows_modifications"]),
        "modifications_price": f"{row['modifications_price']:.2f}",
        "is_active": bool(row["is_active"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _query_id(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    raw = value.strip()
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("Ожидается целое число.")
    number = natural(raw)
    if number is None:  # negative, or past BIGINT: an integer, not an id
        raise ValueError(message("invalid_id"))
    return number


def _filter_price(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("Значение не может быть отрицательным.")
    if value > MAX_FILTER_PRICE:
        raise ValueError(f"Значение не может быть больше {MAX_FILTER_PRICE}.")
    return value


def _ordering(value: str) -> str:
    if value not in ORDERINGS:
        raise ValueError(f"Допустимые значения: {', '.join(sorted(ORDERINGS))}.")
    return value


def _search(value: str) -> str:
    if len(search_words(value)) > MAX_SEARCH_WORDS:
        raise ValueError(TOO_MANY_WORDS)
    return value


QueryId = Annotated[int, BeforeValidator(_query_id), AfterValidator(public_id)]
QueryPrice = Annotated[Decimal, BeforeValidator(_decimal), AfterValidator(_filter_price)]
QuerySearch = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_SEARCH_LENGTH), AfterValidator(_search)
]


class ServiceQuery(BaseModel):
    """The listing's filters; an empty parameter (`?category=`) counts as absent."""

    category: QueryId | None = None
    creator: QueryId | None = None
    search: QuerySearch | None = None
    min_price: QueryPrice | None = None
    max_price: QueryPrice | None = None
    ordering: Annotated[str, AfterValidator(_ordering)] = DEFAULT_ORDERING

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> dict[str, str]:
        return {name: params[name] for name in cls.model_fields if params.get(name, "").strip()}

    def filters(self) -> ServiceFilters:
        return ServiceFilters(
            category=self.category,
            creator=self.creator,
            search=search_words(self.search or ""),
            min_price=self.min_price,
            max_price=self.max_price,
            ordering=self.ordering,
        )
