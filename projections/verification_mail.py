"""Mails the verification link for every token issued (at least once; rewriting is harmless)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from projections.mail import Mailer
from ugc.accounts import User, VerificationToken, verification_token
from ugc.platform.store import Accounts

# The user as stored now, past the event being mailed: `projections.registry.stored_users`.
StoredUser = Callable[[int], User]


class VerificationMailProjection(Projection):
    name = "verification_mail"
    applications: ClassVar[tuple[str, ...]] = (Accounts.name,)
    read_model = False

    def __init__(self, mailer: Mailer, stored_user: StoredUser, *, secret_key: str, public_url: str) -> None:
        self.mailer = mailer
        self.stored_user = stored_user
        self.secret_key = secret_key
        self.public_url = public_url

    def handlers(self) -> Mapping[type, Handler]:
        return {VerificationToken.Issued: self.token_issued}

    def token_issued(self, e: VerificationToken.Issued) -> None:
        if not e.email:
            return  # the person was erased before the mail went: there is no address to write to
        # A mail waits in order while its server is down; by the time it can go, its user may have
        # asked for a newer link (which voids this one) or verified: a dead link is no use to them.
        user = self.stored_user(e.user_number)
        if user.is_verified or not user.verifies_with(e.originator_id):
            return
        link = f"{self.public_url}/verify-email?token={verification_token(e.key, self.secret_key)}"
        body = (
            "Здравствуйте!\n\n"
            "Вы зарегистрировались в UGC Market. Чтобы подтвердить адрес электронной почты, "
            f"откройте ссылку:\n\n{link}\n\n"
            f"Ссылка действует до {e.expires_at:%Y-%m-%d %H:%M} UTC и работает один раз.\n"
            "Если вы не регистрировались, просто проигнорируйте это письмо.\n"
        )
        self.mailer.send(
            to=e.email,
            subject="Подтверждение email в UGC Market",
            body=body,
            message_key=f"verify-{e.originator_id}",
            go_ahead=self.go_ahead,
        )
