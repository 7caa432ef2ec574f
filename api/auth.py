"""Who is calling: the bearer token of a request or of a WebSocket's `?token=`, checked against the account.

A token is good only while its user exists (`commands/standing.py`): a well-signed token of an
account that does not exist is refused like a forged one. Every route declared with `endpoint`
resolves its caller before it runs (`guarded`), so `authenticated_user` stays a plain function
that reads the result. Writes need a verified e-mail: `guarded` refuses them with 403 before the
body is read (an unverified client never uploads 25 MiB only to be told no), unless the route is
declared open to unverified users (signing out, asking for the mail again, marking read).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from api.errors import forbidden, unauthorized
from api.services import Services, services
from api.tokens import TokenError, TokenService
from commands.standing import Standing

Endpoint = Callable[[Request], Awaitable[Response]]

# What separates the scheme from the token: RFC 9110 §11.4 says spaces (`1*SP`); a tab too, as the
# spec's original server (DRF's `split()`) took it, rather than read `Bearer<TAB>token` as no credentials.
_BLANKS = re.compile(r"[ \t]+")

# Where `guarded` leaves the resolved caller in the request's scope: (token, standing or None).
_CALLER = "ugc.caller"


def bearer_token(connection: HTTPConnection) -> str | None:
    """The request's bearer token; None when it carries no credentials this API takes (no header, a
    blank one, another scheme such as Basic: the spec's 401 "not provided", as DRF answers them);
    401 "invalid" for a Bearer header without a token or with more than one, and for two Authorization
    headers: the field is one value (RFC 7235 §4.2), and of two the first was taken, where a proxy may
    act on the other."""
    lines = connection.headers.getlist("authorization")
    if len(lines) > 1:
        raise unauthorized("invalid_token")
    header = lines[0] if lines else ""
    if _scheme(header) != "bearer":
        return None
    token = _bearer(header)
    if token is None:
        raise unauthorized("invalid_token")
    return token


def _scheme(header: str) -> str:
    """The credentials' scheme, lower-cased (RFC 9110 §11.1: case-insensitive): the first word."""
    return _BLANKS.split(header.strip(), maxsplit=1)[0].lower()


def _bearer(header: str) -> str | None:
    """The token of `Bearer <token>`; None for another scheme, for no token, or for more than one word
    after the scheme (RFC 6750 §2.1: one b64token)."""
    words = _BLANKS.split(header.strip())
    if len(words) != 2 or words[0].lower() != "bearer":
        return None
    return words[1]


async def standing_of(s: Services, token: str, *, fresh: bool = False) -> Standing | None:
    """The standing of the user an access token was issued to; None for a bad token or a missing user.

    A standing kept in memory serves unless `fresh` asks whether an unverified user is verified by now.
    """
    try:
        user_id = s.tokens.user_id(token, "access")
    except TokenError:
        return None
    return await standing_for(s, user_id, fresh=fresh)


async def standing_for(s: Services, user_id: int, *, fresh: bool = False) -> Standing | None:
    kept = s.standings.known(user_id)
    if kept is not None and (kept.verified or not fresh):
        return kept
    return await s.run(s.standings.load, user_id)


def caller(connection: HTTPConnection) -> Standing:
    """The calling user's standing; 401 without a token, with a bad one, or for a missing account."""
    token = bearer_token(connection)
    if token is None:
        raise unauthorized("not_authenticated")
    resolved = connection.scope.get(_CALLER)
    if resolved is None or resolved[0] != token:
        # Only a route that bypassed `endpoint` gets here; refuse rather than skip the account check.
        raise unauthorized("invalid_token")
    standing: Standing | None = resolved[1]
    if standing is None:
        raise unauthorized("invalid_token")
    return standing


def authenticated_user(connection: HTTPConnection, tokens: TokenService) -> int:
    """The calling user's id; 401 without a token or with a bad one (`tokens` checked it in `guarded`)."""
    return caller(connection).user_id


def require_verified(standing: Standing) -> None:
    """403 unless the e-mail is verified: the rule of every write, REST routes and chat frames alike."""
    if not standing.verified:
        raise forbidden()


async def verified_user(s: Services, user_id: int) -> None:
    """`require_verified` for a user known by id (a socket's), asking the store again if need be."""
    standing = await standing_for(s, user_id, fresh=True)
    if standing is None:
        raise unauthorized("invalid_token")
    require_verified(standing)


def guarded(handler: Endpoint, *, verified: bool) -> Endpoint:
    """`handler` behind the caller's check: the token's account resolved, and verified when `verified`."""

    @functools.wraps(handler)
    async def guard(request: Request) -> Response:
        header = request.headers.get("authorization")
        token = _bearer(header) if header is not None else None
        if token is not None:
            request.scope[_CALLER] = (token, await standing_of(services(request), token, fresh=verified))
        if verified:
            require_verified(caller(request))
        return await handler(request)

    return guard
