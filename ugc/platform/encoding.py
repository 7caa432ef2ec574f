"""JSON as this service writes it: UTF-8 text, Decimals as numbers, times in ISO UTC with `Z`.

One encoder for the HTTP answers (`api/responses.py`), the WebSocket frames and the pushes that
travel over Redis (`ugc/platform/push_relay.py`), so a push reads the same whichever way it came.
Encoded by orjson: the standard library's encoder called a Python hook for every Decimal and
datetime, about half of a listing page's server time (bench/RESULTS.md). A naive time is taken
as UTC (the read database hands them out in UTC: `ugc/platform/database.py` pins the session
time zone).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=_OPTIONS)
