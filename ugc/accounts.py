"""Users and their e-mail verification tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import InvalidToken
from ugc.events import Caused, stored_as, upcast_cause
from ugc.ids import aggregate_id

ROLES = ("admin", "auditor")
PROFILE_FIELDS = ("first_name", "last_name", "phone", "bio")


@stored_as
class User(Aggregate):
    @dataclass(frozen=True)
    class Registered(Caused, Aggregate.Created):
        TOPIC = "ugc.User.Registered"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        username: str
        email: str
        password_hash: str
        first_name: str
        last_name: str
        at: datetime

    @dataclass(frozen=True)
    class EmailVerified(Caused, Aggregate.Event):
        TOPIC = "ugc.User.EmailVerified"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        at: datetime

    @dataclass(frozen=True)
    class ProfileUpdated(Caused, Aggregate.Event):
        TOPIC = "ugc.User.ProfileUpdated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class RoleGranted(Caused, Aggregate.Event):
        TOPIC = "ugc.User.RoleGranted"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        role: str
        at: datetime

    @dataclass(frozen=True)
    class RoleRevoked(Caused, Aggregate.Event):
        TOPIC = "ugc.User.RoleRevoked"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        role: str
        at: datetime

    @dataclass(frozen=True)
    class VerificationRenewed(Caused, Aggregate.Event):
        """The user asked for the verification mail again: from here on only `token` (the id of the
        VerificationToken issued with it) verifies their address, and every earlier link is void."""

        TOPIC = "ugc.User.VerificationRenewed"
        class_version = 1
        token: str
        at: datetime

    @dataclass(frozen=True)
    class Erased(Caused, Aggregate.Event):
        """The person's data keys were destroyed (`ugc users erase`): their personal fields read as
        erased from here on, in this aggregate and in every replay of the log."""

        TOPIC = "ugc.User.Erased"
        class_version = 1
        at: datetime

    @staticmethod
    def create_id(
        number: int,
        username: str,
        email: str,
        password_hash: str,
        first_name: str,
        last_name: str,
        at: datetime,
    ) -> UUID:
        return aggregate_id("user", number)

    @event(Registered)
    def __init__(
        self,
        number: int,
        username: str,
        email: str,
        password_hash: str,
        first_name: str,
        last_name: str,
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.username = username
        self.email = email
        self.password_hash = password_hash
        self.first_name = first_name
        self.last_name = last_name
        self.phone = ""
        self.bio = ""
        self.is_verified = False
        self.roles: list[str] = []
        self.erased = False
        # The id of the only verification token that still verifies; None: any unused one of theirs
        # (no link was asked for again, so there is only the one mailed at registration).
        self.verification_token: str | None = None

    def renew_verification(self, token: UUID, at: datetime, actor: str) -> None:
        self._verification_renewed(str(token), at, actor)

    @event(VerificationRenewed)
    def _verification_renewed(self, token: str, at: datetime, actor: str) -> None:
        self.verification_token = token

    def verifies_with(self, token: UUID) -> bool:
        """Whether the verification token `token` is one whose link still verifies this user."""
        return self.verification_token in (None, str(token))

    def verify_email(self, at: datetime, actor: str) -> None:
        if not self.is_verified:
            self._email_verified(at, actor)

    @event(EmailVerified)
    def _email_verified(self, at: datetime, actor: str) -> None:
        self.is_verified = True

    def update_profile(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        """Record only the fields that really change; no event when nothing does."""
        changed = {k: v for k, v in changes.items() if k in PROFILE_FIELDS and getattr(self, k) != v}
        if changed:
            self._profile_updated(changed, at, actor)

    @event(ProfileUpdated)
    def _profile_updated(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        for name, value in changes.items():
            setattr(self, name, value)

    def grant(self, role: str, at: datetime, actor: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
        if role not in self.roles:
            self._role_granted(role, at, actor)

    @event(RoleGranted)
    def _role_granted(self, role: str, at: datetime, actor: str) -> None:
        self.roles.append(role)

    def revoke(self, role: str, at: datetime, actor: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
        if role in self.roles:
            self._role_revoked(role, at, actor)

    @event(RoleRevoked)
    def _role_revoked(self, role: str, at: datetime, actor: str) -> None:
        self.roles.remove(role)

    def erase(self, at: datetime, actor: str) -> None:
        if not self.erased:
            self._erased(at, actor)

    @event(Erased)
    def _erased(self, at: datetime, actor: str) -> None:
        self.erased = True
        self.roles = []
        self.email = ""
        for name in PROFILE_FIELDS:
            setattr(self, name, "")


@stored_as
class VerificationToken(Aggregate):
    """A single-use e-mail verification token.

    Its id is derived from a random key; the mailed token is that key plus an HMAC of it, so the
    event log never holds a usable token (see `commands/accounts.py`).
    """

    @dataclass(frozen=True)
    class Issued(Caused, Aggregate.Created):
        TOPIC = "ugc.VerificationToken.Issued"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        key: str
        user_number: int
        email: str
        expires_at: datetime
        at: datetime

    @dataclass(frozen=True)
    class Used(Caused, Aggregate.Event):
        TOPIC = "ugc.VerificationToken.Used"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        at: datetime

    @staticmethod
    def create_id(key: str, user_number: int, email: str, expires_at: datetime, at: datetime) -> UUID:
        return VerificationToken.id_for(key)

    @staticmethod
    def id_for(key: str) -> UUID:
        return aggregate_id("verification-token", key)

    @event(Issued)
    def __init__(self, key: str, user_number: int, email: str, expires_at: datetime, at: datetime, actor: str) -> None:
        self.key = key
        self.user_number = user_number
        self.expires_at = expires_at
        self.used = False

    def use(self, at: datetime, actor: str) -> None:
        if self.used:
            raise InvalidToken("verification_token_used")
        if at >= self.expires_at:
            raise InvalidToken("verification_token_expired")
        self._used(at, actor)

    @event(Used)
    def _used(self, at: datetime, actor: str) -> None:
        self.used = True


def verification_token(key: str, secret: str) -> str:
    """The token mailed to the user: the key plus its HMAC, in `[A-Za-z0-9._-]`, never ending with '.'."""
    return f"{key}.{_signature(key, secret)}"


def verification_key(token: str, *secrets: str) -> str | None:
    """The key inside a token signed with one of `secrets` (the current one and those being rotated
    out: a link carries no key id, and an HMAC or two costs nothing), or None for anything forged or garbled."""
    key, dot, signature = token.partition(".")
    if not dot or not key:
        return None
    # As bytes: compare_digest raises TypeError on a str holding a non-ASCII character (a 500).
    if not any(hmac.compare_digest(signature.encode(), _signature(key, secret).encode()) for secret in secrets):
        return None
    return key


def _signature(key: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"verify-email:{key}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
