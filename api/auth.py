"""Who is calling: the bearer token of a request or of a WebSocket's `?token=`."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from api.errors import unauthorized
from api.tokens import TokenError, TokenService


def bearer_token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("invalid_token")
    return token.strip()


def authenticated_user(connection: HTTPConnection, tokens: TokenService) -> int:
    """The calling user's id; 401 without a token or with a bad one."""
    token = bearer_token(connection)
    if token is None:
        raise unauthorized("not_authenticated")
    try:
        return tokens.user_id(token, "access")
    except TokenError:
        raise unauthorized("invalid_token") from None
