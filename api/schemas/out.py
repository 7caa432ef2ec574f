"""The base of response models: exactly the keys an answer has, JSON types as the answer writes them.

Answers are written by orjson from the renderers' dicts (api/responses.py), not by these models:
the models describe them (the OpenAPI document) and the API tests hold every answer to them
(tests/response_check.py). So a model forbids keys it does not declare and validates strictly
(a number is not a string, 1 is not `true`), or it would let the answer and the document drift.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

T = TypeVar("T")

# What a renderer reads: a read-model row, or the row a push carries (column -> value).
Row = dict[str, Any]


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _json_number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("Ожидается число JSON.")
    return Decimal(str(value))


# Money and ratings: an exact Decimal written as a JSON number (`1200`, `4.67`), never a string.
Number = Annotated[Decimal, BeforeValidator(_json_number), WithJsonSchema({"type": "number"})]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(description: str) -> Any:
    """A key an answer may leave out but never sends as null.

    Its default (None) stands for "absent" and is never validated, while a null that is sent is, and
    fails; the document shows the key as optional, without a default.
    """
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class Page(Out, Generic[T]):
    """Every list: `page`, `page_size` in; the total, absolute links to the neighbours, one page out."""

    count: int
    next: str | None
    previous: str | None
    results: list[T]
