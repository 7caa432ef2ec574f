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

# What following each projection's logs costs, relatively (1 when not named): the leases are balanced
# between processes by weight (projections/leasing.py), so the costly ones do not end up in one
# process while another idles. From each one's catch-up alone (`bench/leases_catchup.py --costs`),
# the orders log's four read models carrying nearly all of it (07:54: orders 1.23 s, notifications
# 1.35, creator_stats 0.53, listings 0.51, bench/results/2026-12-03-0754-leases-catchup.md).
LEASE_WEIGHTS: dict[str, float] = {"orders": 5.0, "notifications": 5.0, "creator_stats": 2.0, "listings": 2.0}


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
