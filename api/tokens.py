"""JWT access and refresh tokens: HS256 pinned on decode, `typ` keeps the two apart."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import jwt

from ugc.clock import Clock
from ugc.platform.cache import LRU

TokenType = Literal["access", "refresh"]
ALGORITHM = "HS256"
CLOCK_SKEW = 60  # seconds a token's `iat` may be ahead of our clock (another server's clock)
VERIFIED_TOKENS = 4096  # signatures remembered per process (~115 us of PyJWT each on a slow core)


class TokenError(Exception):
    """The token is malformed, forged, expired, or of the other type."""


@dataclass(frozen=True)
class _Claims:
    user_id: int
    typ: str
    iat: int
    exp: int


class TokenService:
    def __init__(self, secret_key: str, clock: Clock, *, access_ttl: int, refresh_ttl: int) -> None:
        self._key = secret_key
        self._clock = clock
        self._ttl: dict[TokenType, timedelta] = {
            "access": timedelta(seconds=access_ttl),
            "refresh": timedelta(seconds=refresh_ttl),
        }
        # Tokens whose signature and claims were verified once; their times are checked on every use.
        self._verified = LRU[str, _Claims](VERIFIED_TOKENS)

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
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            self._verified.put(token, claims)
        # Times are checked against the injected clock, not the wall clock, so tests can move time.
        now = self._clock.now().timestamp()
        if claims.exp <= now:
            raise TokenError("expired")
        if claims.iat > now + CLOCK_SKEW:
            raise TokenError("issued in the future")
        if claims.typ != typ:
            raise TokenError(f"not an {typ} token")
        return claims.user_id

    def _decode(self, token: str) -> _Claims:
        """Signature, algorithm and the shape of the claims; times are the caller's to check."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "jti", "sub", "typ"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as error:
            raise TokenError(str(error)) from None
        exp, iat, subject, typ = claims["exp"], claims["iat"], claims["sub"], claims["typ"]
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise TokenError("bad times")
        if not isinstance(subject, str) or not subject.isdigit():
            raise TokenError("bad subject")
        if not isinstance(typ, str):
            raise TokenError("bad type")
        return _Claims(user_id=int(subject), typ=typ, iat=iat, exp=exp)
