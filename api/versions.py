"""An aggregate's version at the edge: `ETag: "<version>"` on answers, `If-Match: "<version>"` on writes.

A write that names a version no longer current answers 412 with the current one (`StaleVersion`
in `api/errors.py`); without `If-Match` a version clash is retried against the new state.
"""

from __future__ import annotations

from starlette.requests import Request

from ugc.platform.numbers import natural

NO_VERSION = 0  # an aggregate's first version is 1


def etag(version: int) -> dict[str, str]:
    """The headers that give an answer its version."""
    return {"ETag": f'"{version}"'}


def expected_version(request: Request) -> int | None:
    """The version the request's `If-Match` names; None without one or with `*` (any version).

    A header that names no version (`"abc"`, a list of tags) gets `NO_VERSION`, which no object
    has: like a stale version, it is 412 with the current one, after the checks of who may write.
    `W/"3"` is read as `"3"`: a proxy that compresses answers (nginx's gzip) weakens the ETags it
    passes on, and its clients send back what they were given.
    """
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    return natural(header.strip().removeprefix("W/").strip('"')) or NO_VERSION
