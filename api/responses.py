"""JSON as the contract writes it: UTF-8 text, money and ratings as numbers, times in ISO UTC.

Encoded by orjson: the standard library's encoder called a Python hook for every Decimal and
datetime, about half of a listing page's server time (bench/RESULTS.md). Times leave as ISO 8601
with `Z`: the read database hands them out in UTC (`ugc/platform/database.py` pins the session time zone),
and a naive one is taken as UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=_OPTIONS)


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
