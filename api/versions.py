"""An aggregate's version at the edge: `ETag: "<version>"` on answers, `If-Match: "<version>"` on writes.

A write whose `If-Match` names no version still current answers 412 with the current one
(`StaleVersion` in `api/errors.py`); without `If-Match` a version clash is retried against the new
state.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from ugc.platform.numbers import natural

# One element of the header's comma-separated list: a quoted tag, whose quotes may hold a comma
# (`"1,2"` is one tag), or whatever else stands between two commas.
_ELEMENT = re.compile(r'(?:W/)?"[^"]*"|[^,\s][^,]*')


def etag(version: int) -> dict[str, str]:
    """The headers that give an answer its version."""
    return {"ETag": f'"{version}"'}


def expected_versions(request: Request) -> frozenset[int] | None:
    """The versions the request's `If-Match` names; None without one or with `*` (any version).

    RFC 9110 §13.1.1: the condition holds when any tag of the list (`"3", "4"`, or several header
    lines) names the current version. A tag that names no version (`"abc"`, `"1,2"`, a `*` inside
    a list) matches none: if none of the tags names the current version, it is 412 with the
    current one, after the checks of who may write. `W/"3"` is read as `"3"`: a proxy that
    compresses answers (nginx's gzip) weakens the ETags it passes on, and its clients send back
    what they were given; our tag is the object's version, the same whatever the bytes' coding.
    """
    lines = request.headers.getlist("if-match")
    if not lines:
        return None
    header = ", ".join(lines)
    if header.strip() == "*":
        return None
    tags = (tag.strip().removeprefix("W/").strip('"') for tag in _ELEMENT.findall(header))
    return frozenset(version for version in map(natural, tags) if version)
