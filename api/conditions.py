"""Conditional requests (RFC 9110 §13.1): the lists of tags `If-Match` and `If-None-Match` take, and the 304.

Clients that keep copies (mobile apps, SDKs) revalidate a read with the `ETag` it came with; when
the answer would be the same bytes, it is 304 without them. `NotModified` does this for every JSON
read that answers an ETag (orders, services, the account, creator profiles, portfolio items), whatever made the
answer (a route's `versioned`, the services listing's remembered bytes); stored files answer their
own 304 (api/downloads.py), since a matching tag must win over a `Range` there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One element of a comma-separated list of tags: what stands between two commas, where a comma
# inside quotes separates nothing (`"1,2"` is one tag, `"1"x` one element that is no tag).
_ELEMENT = re.compile(r'(?:[^,"\s]|"[^"]*")(?:[^,"]|"[^"]*")*')
# A well-formed entity tag (RFC 9110 §8.8.3), weak or not: its quoted opaque part.
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')
# Representation metadata that a 304 should not send (RFC 9110 §15.4.5): it describes a body that is
# not there. ETag and Last-Modified stay, to update the client's copy.
_BODY_HEADERS = frozenset({b"content-type", b"content-length", b"content-encoding", b"content-language"})


def listed(lines: Sequence[str]) -> list[str]:
    """The elements of a header's list of tags, which may come in several header lines."""
    return [element.strip() for element in _ELEMENT.findall(", ".join(lines))]


def none_match(lines: Sequence[str], etag: str) -> bool:
    """Whether an `If-None-Match` (its header lines) names `etag`: the client's copy is current.

    Weak comparison: `W/"x"` and `"x"` are one tag (a proxy's gzip weakens the tags it passes on,
    and its clients send back what they got). `*` alone names any current answer; a `*` in a list
    or an element that is no tag names none.
    """
    elements = listed(lines)
    if elements == ["*"]:
        return True
    ours = _ENTITY_TAG.fullmatch(etag)
    if ours is None:
        return False
    named = (_ENTITY_TAG.fullmatch(element) for element in elements)
    return any(tag is not None and tag[1] == ours[1] for tag in named)


class NotModified:
    """Turn a GET's or HEAD's 200 whose ETag the request's `If-None-Match` names into a 304.

    It acts on the answer the route gave, so after the caller's authorisation: a caller who may not
    see an object gets its 404, never a 304 that confirms a guessed tag. The 304 keeps the 200's other
    headers (`ETag`, `Cache-Control`, `Vary`, the request id) and drops the body and what describes it.
    Writes, other statuses and answers without an ETag pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = Headers(scope=scope).getlist("if-none-match") if scope["type"] == "http" else []
        if not asked or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        withheld = False

        async def send_unless_current(message: Message) -> None:
            nonlocal withheld
            if message["type"] == "http.response.start":
                etag = Headers(raw=message["headers"]).get("etag")
                if message["status"] == 200 and etag is not None and none_match(asked, etag):
                    withheld = True
                    kept = [(name, value) for name, value in message["headers"] if name.lower() not in _BODY_HEADERS]
                    message = {**message, "status": 304, "headers": kept}
            elif withheld:
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}  # the end of the answer, without its bytes
            await send(message)

        await self.app(scope, receive, send_unless_current)
