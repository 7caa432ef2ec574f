"""Sign-in sessions: every sign-in starts a family of refresh tokens, of which only the newest works.

A refresh answers a new access token and a new refresh token, and the presented one stops working.
Presenting a refresh token that was already rotated away means two parties hold the family (a
stolen token, replayed): the family ends, and every later refresh of it is refused — unless it is
the token the last rotation replaced, presented again within UGC_REFRESH_REUSE_WINDOW seconds of that
rotation: the refresh retried after its answer was lost, which is answered the family's current
refresh token again, the very token the lost answer carried (with a new access token). Signing out
ends the family of the token presented. The families live in a platform table
(`ugc/platform/refresh_families.py`), touched only here, on sign-in, refresh and sign-out: requests
that carry an access token never read it. An access token therefore stays good until it expires
(UGC_ACCESS_TOKEN_TTL, 15 minutes) after its session ends; the user behind it is checked on every
request (`api/auth.py`).

An erasure ends every family of the person's that exists once `User.Erased` is committed
(`refresh_families.revoke_all_of`, right after it). A sign-in whose password was checked before that
commit would start its family after the revocation: so the account is read from the log again once
the family is stored, and an erased one ends it. Either that read sees the erasure, or the erasure's
revocation comes after the family and ends it: when `ugc users erase` returns, no refresh token of
the person works, whatever any process still keeps of their standing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from api.tokens import Claims, Issued, TokenError, TokenService
from commands.standing import Standings
from ugc.clock import Clock
from ugc.platform import refresh_families
from ugc.platform.database import Database


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str

    def as_json(self) -> dict[str, str]:
        return {"access": self.access, "refresh": self.refresh}


class Sessions:
    def __init__(
        self, db: Database, tokens: TokenService, clock: Clock, standings: Standings, *, reuse_window: timedelta
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.clock = clock
        self.standings = standings
        self.reuse_window = reuse_window  # UGC_REFRESH_REUSE_WINDOW: a retry's time, 0 for none

    def start(self, user_id: int) -> TokenPair:
        """A new family for a sign-in, and its first pair of tokens; TokenError when the account was
        erased while the password was being checked (see the module's docstring)."""
        family = uuid.uuid4().hex
        refresh = self.tokens.issued(user_id, "refresh", family=family)
        refresh_families.start_family(self.db, family, user_id, _recorded(refresh))
        if self.standings.load(user_id) is None:
            refresh_families.revoke(self.db, family, self.clock.now())
            raise TokenError("the account was erased while signing in")
        return TokenPair(self.tokens.issue(user_id, "access"), refresh.token)

    def rotate(self, presented: Claims) -> TokenPair:
        """The next pair of the family, if `presented` still works (its current refresh token, or its
        sign-in's while it does not rotate); for a retry of the last rotation within the reuse window,
        the current refresh token again; TokenError otherwise, and the family ends
        (ugc/platform/refresh_families.py)."""
        family = _family(presented)
        successor = self.tokens.issued(presented.user_id, "refresh", family=family)
        now = self.clock.now()
        current = refresh_families.rotate(self.db, family, presented.jti, _recorded(successor), now, self.reuse_window)
        if current is None:
            raise TokenError("not the current refresh token of a live family")
        refresh = successor.token
        if current.jti != successor.jti:  # a retry: the token its lost answer carried
            refresh = self.tokens.reissued(
                presented.user_id, family, current.jti, current.issued_at, current.expires_at
            )
        return TokenPair(self.tokens.issue(presented.user_id, "access"), refresh)

    def end(self, presented: Claims) -> None:
        """Sign out: no refresh token of the family works again (ending it twice is harmless)."""
        refresh_families.revoke(self.db, _family(presented), self.clock.now())


def _recorded(issued: Issued) -> refresh_families.FamilyToken:
    return refresh_families.FamilyToken(issued.jti, issued.issued_at, issued.expires_at)


def _family(claims: Claims) -> str:
    if claims.family is None:
        # Issued before families existed: it cannot be rotated or ended, so it is not honoured.
        raise TokenError("a refresh token without a family")
    return claims.family
