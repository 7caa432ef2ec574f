"""Public ids as they arrive in paths and query strings, kept within the BIGINT columns they key."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request

from api.errors import invalid

MAX_ID = 2**63 - 1

# A public id in a request body: positive and within BIGINT.
PublicId = Annotated[int, Field(gt=0, le=MAX_ID)]


class IdConvertor(Convertor[int]):
    """`{name:id}` in a route: 1 to 18 digits, so every match fits the BIGINT columns; longer is a 404."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())


def query_id(request: Request, name: str) -> int | None:
    """An optional id filter (`?name=12`); empty counts as absent, anything but an id is a 422."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_ID:
        raise invalid({name: ["Ожидается целое положительное число."]})
    return int(raw)
