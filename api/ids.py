"""Public ids as they arrive in paths, query strings and bodies, kept within the BIGINT columns they key."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field
from starlette.convertors import Convertor, register_url_convertor

from api.errors import message
from ugc.platform.numbers import MAX_ID, natural


def public_id(value: object) -> int:
    """An integer from 1 to MAX_ID, and nothing that merely converts to one ("5", true, 5.0)."""
    # `type(...) is int` because bool is an int subclass; a Decimal (services parse floats so) is no int.
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise ValueError(message("invalid_id"))
    return value


# An id in a JSON body. Checked before pydantic's own int validation so that every wrong value
# (a string, a boolean, a fraction, 0, a number past BIGINT) gets the same Russian message;
# the bounds in `Field` are for the schema only.
PublicId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(public_id)]


def form_id(value: object) -> int:
    """An id where the body may be a form, whose fields are text: ASCII digits alone ("12"; not
    "1_0", "+5" or " 3 ", which int() reads), or a JSON integer, held to public_id's bounds."""
    return public_id(natural(value) if isinstance(value, str) else value)


FormId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(form_id)]


class IdConvertor(Convertor[int]):
    """`{name:id}` in a route: 1 to 18 digits, so every match fits the BIGINT columns; longer is a 404."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
