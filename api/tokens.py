"""JWT access and refresh tokens: HS256 pinned on decode, `typ` keeps the two apart.

A refresh token also names its family (`fam`): the sign-in it descends from (`api/sessions.py`).
Every token is addressed (`aud`) to the deployment that issued it (ugc/platform/deployment.py), so
another deployment that happens to hold the same UGC_SECRET_KEY refuses it.

Every token names the key that signed it (`kid`, `key_id`): new tokens are signed with
UGC_SECRET_KEY, and those of a key being rotated out (UGC_SECRET_KEY_PREVIOUS) are verified with
that key alone, until it is dropped from the configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import jwt

from ugc.clock import Clock
from ugc.platform.cache import LRU
from ugc.platform.numbers import natural

TokenType = Literal["access", "refresh"]
ALGORITHM = "HS256"
CLOCK_SKEW = 60  # seconds a token's `iat` may be ahead of our clock (another server's clock)
VERIFIED_TOKENS = 4096  # signatures remembered per process (~115 us of PyJWT each on a slow core)


def key_id(key: str) -> str:
    """The `kid` that names `key` in the header of the tokens it signs: an HMAC of a fixed label
    under the key, so it tells nothing of the key itself."""
    return hmac.new(key.encode(), b"ugc-market token key id", hashlib.sha256).hexdigest()[:16]


class TokenError(Exception):
    """The token is malformed, forged, expired, or of the other type."""


@dataclass(frozen=True)
class Claims:
    user_id: int
    typ: str
    iat: int
    exp: int
    jti: str
    family: str | None = None


@dataclass(frozen=True)
class Issued:
    token: str
    jti: str
    issued_at: datetime
    expires_at: datetime


class TokenService:
    def __init__(
        self,
        secret_key: str,
        clock: Clock,
        *,
        audience: str,
        access_ttl: int,
        refresh_ttl: int,
        previous_keys: Sequence[str] = (),
    ) -> None:
        self._key = secret_key
        self._key_id = key_id(secret_key)
        # Keys that verify, by the id a token names: the signing key and those being rotated out.
        self._keys = {key_id(key): key for key in (*previous_keys, secret_key)}
        self._audience = audience
        self._clock = clock
        self._ttl: dict[TokenType, timedelta] = {
            "access": timedelta(seconds=access_ttl),
            "refresh": timedelta(seconds=refresh_ttl),
        }
        # Tokens whose signature and claims were verified once; their times are checked on every use.
        self._verified = LRU[str, Claims](VERIFIED_TOKENS)

    def issue(self, user_id: int, typ: TokenType, *, family: str | None = None) -> str:
        return self.issued(user_id, typ, family=family).token

    def issued(self, user_id: int, typ: TokenType, *, family: str | None = None) -> Issued:
        """A new token, with what a refresh family records of it (its id, issue time and expiry)."""
        now = self._clock.now()
        expires_at = now + self._ttl[typ]
        jti = uuid.uuid4().hex
        return Issued(self._signed(user_id, typ, jti, now, expires_at, family), jti, now, expires_at)

    def reissued(self, user_id: int, family: str, jti: str, issued_at: datetime, expires_at: datetime) -> str:
        """The refresh token `issued` gave out as `jti` of `family` at `issued_at`, signed again: the
        same claims, so the same token while the signing key is the same (a refresh retried after its
        answer was lost gets the token that answer carried: api/sessions.py)."""
        return self._signed(user_id, "refresh", jti, issued_at, expires_at, family)

    def _signed(
        self, user_id: int, typ: TokenType, jti: str, issued_at: datetime, expires_at: datetime, family: str | None
    ) -> str:
        claims: dict[str, str | int] = {
            "sub": str(user_id),
            "typ": typ,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": jti,
            "aud": self._audience,
        }
        if family is not None:
            claims["fam"] = family
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._key_id})

    def user_id(self, token: str, typ: TokenType) -> int:
        """The user a valid token of type `typ` was issued to."""
        return self.claims(token, typ).user_id

    def claims(self, token: str, typ: TokenType) -> Claims:
        """The claims of a valid token of type `typ`; TokenError for any other."""
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
        return claims

    def _decode(self, token: str) -> Claims:
        """Signature, algorithm and the shape of the claims; times are the caller's to check."""
        try:
            # A token from before key ids was signed with the key of its day, the current one then.
            named = jwt.get_unverified_header(token).get("kid", self._key_id)
            key = self._keys.get(named) if isinstance(named, str) else None
            if key is None:
                raise TokenError("signed with a key no longer configured")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                options={
                    "require": ["exp", "iat", "jti", "sub", "typ", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as error:
            raise TokenError(str(error)) from None
        exp, iat, subject, typ, jti = claims["exp"], claims["iat"], claims["sub"], claims["typ"], claims["jti"]
        family = claims.get("fam")
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise TokenError("bad times")
        user_id = natural(subject) if isinstance(subject, str) else None
        if user_id is None:
            raise TokenError("bad subject")
        if not isinstance(typ, str) or not isinstance(jti, str):
            raise TokenError("bad type or id")
        if family is not None and not isinstance(family, str):
            raise TokenError("bad family")
        return Claims(user_id=user_id, typ=typ, iat=iat, exp=exp, jti=jti, family=family)
