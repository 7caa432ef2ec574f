"""An aggregate's version at the edge: `ETag: "<version>.<digest>"` on answers; on writes, `If-Match`
and `If-None-Match`.

An answer shows more than its aggregate: a creator's rating and completed orders, a service's
creator rating, an order's `is_late` (today's date), a creator's skills and portfolio with
`?detail=true`: values kept by other logs or the clock, that change while the version stays. So
the tag is the version and a digest of the answer's bytes: a strong validator (RFC 9110 §8.8.1)
that moves whenever the body does, so no client revalidating its copy keeps a stale rating.

A write's conditions compare the version alone (the number before the dot; a bare `"3"` is the
version 3 as well): they guard a client's edit against another edit of the same object, and what
only joins it (a review's rating, the date) is nobody's edit to lose, so it must not turn the edit
of a creator who has just read their profile into a 412 (`If-Match`), nor let one whose copy is
current by its version through (`If-None-Match`). Neither can be compared whole where a write is
decided, on the aggregate as loaded, without the read models its answer joins. A write whose
`If-Match` names no version still current, or whose `If-None-Match` is `*` or names the current one,
answers 412 with the current version (`PreconditionFailed` in `api/errors.py`, whose `ETag` is the
bare `"<version>"`, having no body to digest); without `If-Match` a version clash is retried
against the new state.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.requests import Request

from api.conditions import listed
from api.responses import JSON
from commands.saving import Preconditions
from ugc.platform.numbers import natural

# What a tag of ours holds: the version, and the digest of the answer it came with.
_VERSION_TAG = re.compile(r"([0-9]+)(?:\.[0-9a-f]{16})?")
DIGEST_LENGTH = 16  # hex digits of the body's SHA-256: 64 bits, two bodies of one object alike by chance 1 in 2**64


def etag(version: int, body: bytes) -> dict[str, str]:
    """The headers that give an answer whose bytes are `body` its version and validator."""
    digest = hashlib.sha256(body).hexdigest()[:DIGEST_LENGTH]
    return {"ETag": f'"{version}.{digest}"'}


def versioned(content: Any, version: int, status_code: int = 200) -> JSON:
    """A JSON answer of an object at `version`, with its ETag."""
    response = JSON(content, status_code=status_code)
    response.headers.update(etag(version, bytes(response.body)))
    return response


def preconditions(request: Request) -> Preconditions:
    """The conditions of the request's `If-Match` and `If-None-Match` on the version it writes.

    RFC 9110 §13.1.1: `If-Match` holds when any tag of its list (`"3", "4"`, or several header lines)
    names the current version; `*` (alone) holds for any. §13.1.2: `If-None-Match` holds when none
    does, and `*` (alone) when there is no current version at all, which is never so for an object
    one can write to. A tag that names no version (`"abc"`, `"1,2"`, a `*` inside a list) matches none:
    an `If-Match` of such alone is a 412 with the current version, an `If-None-Match` holds. Either is
    checked after the checks of who may write. `W/"3"` is read as `"3"`: a proxy that compresses
    answers (nginx's gzip) weakens the ETags it passes on, and its clients send back what they were
    given; our tag is the object's version, the same whatever the bytes' coding.
    """
    lines = request.headers.getlist("if-match")
    matching = listed(lines)
    none_matching = listed(request.headers.getlist("if-none-match"))
    return Preconditions(
        # An `If-Match` with no tag that names a version (`"abc"`, none at all) holds for none.
        matching=None if not lines or matching == ANY else _versions(matching),
        present=bool(lines),
        absent=none_matching == ANY,
        none_matching=_versions(none_matching),
    )


ANY = ["*"]  # a header's list of tags that names any current version


def _versions(tags: list[str]) -> frozenset[int]:
    """The versions a header's list of tags names (a `*` in it names none)."""
    return frozenset(version for version in (_version(tag.removeprefix("W/").strip('"')) for tag in tags) if version)


def _version(tag: str) -> int | None:
    """The version a tag's text names: `3`, or `3.<digest>` of any answer at version 3 (not compared)."""
    named = _VERSION_TAG.fullmatch(tag)
    return None if named is None else natural(named[1])
