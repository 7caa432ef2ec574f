"""`Accept` (RFC 9110 §12.5.1): a request that accepts none of the types a route answers in is refused
with 406 before its handler runs, as DRF refuses it (its message too), so a command it asked for is
not done either. Every route declares the one type it answers in (`Operation.media_type`); a stored
file's route (`*/*`) has no other representation to offer and is served whatever was asked.

A missing `Accept` accepts anything, and so does one none of whose ranges reads as `type/subtype`
with a qvalue (RFC 9110 lets a server disregard the field): only a client that said what it takes,
and said it in a form that can be read, is refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterator

from starlette.requests import Request
from starlette.responses import Response

from api.errors import not_acceptable

Endpoint = Callable[[Request], Awaitable[Response]]

_TOKEN = r"[!#$%&'*+.^_`|~0-9a-z-]+"
_RANGE = re.compile(rf"(\*/\*|{_TOKEN}/\*|{_TOKEN}/{_TOKEN})")
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def negotiated(handler: Endpoint, media_type: str) -> Endpoint:
    """`handler`, answered 406 first when the request's `Accept` takes nothing of `media_type`."""
    if media_type == "*/*":
        return handler

    @functools.wraps(handler)
    async def negotiate(request: Request) -> Response:
        accept = request.headers.getlist("accept")
        if accept and not acceptable(",".join(accept), media_type):
            raise not_acceptable()
        return await handler(request)

    return negotiate


def acceptable(accept: str, offered: str) -> bool:
    """Whether `accept` takes `offered` (`type/subtype`, or `type/*` for any of a family, as images are).

    A concrete type gets the quality of the most specific range that matches it (`text/plain;q=0,
    text/*` refuses text/plain, `text/*;q=0, text/plain` takes it); a family is taken when a range
    with a quality above 0 overlaps it."""
    ranges = list(_ranges(accept))
    if not ranges:
        return True
    kind, _, sub = offered.lower().partition("/")
    if sub == "*":
        return any(quality > 0 and (rtype in ("*", kind)) for (rtype, _), quality in ranges)
    best, chosen = -1, 0.0
    for (rtype, rsub), quality in ranges:
        if rtype not in ("*", kind) or rsub not in ("*", sub):
            continue
        specificity = (rtype != "*") + (rsub != "*")
        if specificity > best or (specificity == best and quality > chosen):
            best, chosen = specificity, quality
    return chosen > 0


def _ranges(accept: str) -> Iterator[tuple[tuple[str, str], float]]:
    """Each media range of `accept` that reads, with its quality; the others are passed over."""
    for item in accept.lower().split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        if not _RANGE.fullmatch(media):
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                quality = float(value.strip()) if _QVALUE.fullmatch(value.strip()) else -1.0
        if quality >= 0:
            rtype, _, rsub = media.partition("/")
            yield (rtype, rsub), quality
