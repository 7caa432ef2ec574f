"""An aggregate's version at the edge: `ETag: "<version>"` on answers, `If-Match: "<version>"` on writes.

A write that names a version no longer current answers 412 with the current one (`StaleVersion`
in `api/errors.py`); without `If-Match` a version clash is retried against the new state.
"""

from __future__ import annotations

from starlette.requests import Request

from api import errors
from ugc.platform.numbers import natural


def etag(version: int) -> dict[str, str]:
    """The headers that give an answer its version."""
    return {"ETag": f'"{version}"'}


def expected_version(request: Request) -> int | None:
    """The version the request's `If-Match` names; None without one or with `*` (any version).

    A header that names no version can match none: 412.
    """
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    version = natural(header.strip().removeprefix("W/").strip('"'))
    if version is None:  # no version an aggregate ever had
        raise errors.ApiError(412, {"error": errors.message("stale_version")})
    return version
