"""Mails the verification link for every token issued (at least once; rewriting is harmless)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from projections.mail import Mailer
from ugc.accounts import VerificationToken, verification_token
from ugc.platform.store import Accounts


class VerificationMailProjection(Projection):
    name = "verification_mail"
    applications: ClassVar[tuple[str, ...]] = (Accounts.name,)
    read_model = False

    def __init__(self, mailer: Mailer, *, secret_key: str, public_url: str) -> None:
        self.mailer = mailer
        self.secret_key = secret_key
        self.public_url = public_url

    def handlers(self) -> Mapping[type, Handler]:
        return {VerificationToken.Issued: self.token_issued}

    def token_issued(self, e: VerificationToken.Issued) -> None:
        if not e.email:
            return  # the person was erased before the mail went: there is no address to write to
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
