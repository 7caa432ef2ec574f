"""Every projection of the system, built with what it needs."""

from __future__ import annotations

from projections.accounts import AccountsProjection
from projections.base import Projection
from projections.catalog import CatalogProjection
from projections.creator_skills import CreatorSkillsProjection
from projections.creator_stats import CreatorStatsProjection
from projections.files import FilesProjection
from projections.listings import ListingsProjection
from projections.mail import Mailer
from projections.messaging import MessagingProjection
from projections.notifications import NotificationsProjection
from projections.orders import OrdersProjection
from projections.portfolio import PortfolioProjection
from projections.verification_mail import VerificationMailProjection
from ugc.config import Settings
from ugc.platform.push import Publisher


def all_projections(settings: Settings, publisher: Publisher | None = None) -> list[Projection]:
    """`publisher` carries pushes to WebSocket clients; without one (rebuilds) nothing is pushed."""
    mailer = Mailer(smtp_url=settings.smtp_url, outbox_dir=settings.outbox_dir, sender=settings.mail_from)
    return [
        AccountsProjection(),
        CatalogProjection(),
        FilesProjection(),
        ListingsProjection(),
        OrdersProjection(),
        CreatorStatsProjection(),
        CreatorSkillsProjection(),
        PortfolioProjection(),
        MessagingProjection(publisher),
        NotificationsProjection(publisher),
        VerificationMailProjection(mailer, secret_key=settings.secret_key, public_url=settings.public_url),
    ]
