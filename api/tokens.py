"""JWT access and refresh tokens: HS256 pinned on decode, `typ` keeps the two apart."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

import jwt

from ugc.clock import Clock

TokenType = Literal["access", "refresh"]
ALGORITHM = "HS256"
CLOCK_SKEW = 60  # seconds a token's `iat` may be ahead of our clock (another server's clock)


class TokenError(Exception):
    """The token is malformed, forged, expired, or of the other type."""


class TokenService:
    def __init__(self, secret_key: str, clock: Clock, *, access_ttl: int, refresh_ttl: int) -> None:
        self._key = secret_key
        self._clock = clock
        self._ttl: dict[TokenType, timedelta] = {
            "access": timedelta(seconds=access_ttl),
            "refresh": timedelta(seconds=refresh_ttl),
        }

    def issue(self, user_id: int, typ: TokenType) -> str:
        now = self._clock.now()
        claims = {
            "sub": str(user_id),
            "typ": typ,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl[typ]).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def user_id(self, token: str, typ: TokenType) -> int:
        """The user a valid token of type `typ` was issued to."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "jti", "sub", "typ"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as error:
            raise TokenError(str(error)) from None
        # Times are checked against the injected clock, not the wall clock, so tests can move time.
        now = self._clock.now().timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int) or exp <= now:
            raise TokenError("expired")
        if not isinstance(iat, int) or iat > now + CLOCK_SKEW:
            raise TokenError("issued in the future")
        if claims["typ"] != typ:
            raise TokenError(f"not an {typ} token")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.isdigit():
            raise TokenError("bad subject")
        return int(subject)
