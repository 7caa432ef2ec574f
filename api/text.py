"""Text that every backend can store: the one check that user input passes before it reaches the log.

PostgreSQL text cannot hold NUL and psycopg cannot encode a lone surrogate, while SQLite stores both.
A string the write side accepted but a projection cannot write wedges that projection for good (every
retry fails on the same event), so such text is refused at the edge with 422, on every backend alike.
Refused: C0 control characters other than tab, line feed and carriage return (browsers send a
textarea's line breaks as CR LF), and UTF-16 surrogates, which are not characters at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from api.errors import message

_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def unstorable_fields(data: Any, path: str = "") -> dict[str, list[str]]:
    """Every place in a parsed body (objects, lists, strings, keys) that holds unstorable text, by path."""
    found: dict[str, list[str]] = {}
    for where, text in _strings(data, path):
        if not storable(text):
            found[where or "non_field_errors"] = [message("unstorable_text")]
    return found


def unstorable_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The same for name/value pairs such as a query string (a bad name is reported under itself)."""
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        if not (storable(name) and storable(value)):
            found[name if storable(name) else "non_field_errors"] = [message("unstorable_text")]
    return found


def _strings(data: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not storable(key):
                yield path, key
                continue
            yield from _strings(value, where)
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _strings(value, f"{path}.{index}" if path else str(index))
