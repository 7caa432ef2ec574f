"""A JSON body written one way, whatever way its client wrote it: what an `Idempotency-Key`'s
fingerprint hashes (api/idempotency.py), so that a retrying client that serialises the same body
again, its names in another order, other whitespace, a character escaped or not, is taken for
the same request.

Only what the API cannot tell apart is made one: object names are sorted, whitespace dropped,
strings escaped one way. Numbers stay as written: `1` and `1.0` (or `1e2` and `100`) are different
requests, since a field may take one and refuse the other (an id takes no fraction). A name given
twice counts once, with its last value (the API refuses such a body: api/body.py `loads`). A body
that is empty is `{}`, as the API reads it too.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn


class _Number(str):
    """A JSON number, kept as its text."""


def canonical(raw: bytes) -> bytes:
    """`raw` written canonically when it is JSON; `raw` itself when it is not (the API answers it 400)."""
    if not raw:
        return b"{}"
    try:
        return _written(json.loads(raw, parse_int=_Number, parse_float=_Number, parse_constant=_not_json)).encode()
    except (ValueError, RecursionError):  # not JSON, or nested past what the API reads (api/body.py)
        return raw


def _not_json(literal: str) -> NoReturn:
    raise ValueError(f"{literal} is not JSON")


def _written(value: Any) -> str:
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(name)}:{_written(item)}" for name, item in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_written(item) for item in value) + "]"
    return json.dumps(value)  # a string (escaped to ASCII, one way for each character), true, false, null
