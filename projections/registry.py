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
from projections.verification_mail import StoredUser, VerificationMailProjection
from ugc.accounts import User
from ugc.config import Settings
from ugc.ids import aggregate_id
from ugc.platform.push import Publisher
from ugc.platform.store import Accounts, EventStores

# What following each projection's logs costs, relatively (1 when not named): the leases are balanced
# between processes by weight (projections/leasing.py), so the costly ones do not end up in one
# process while another idles. The orders log's four read models carry nearly all of it, and
# notifications the most: about as much as the other three together since its batch stopped
# building objects and pushes nobody hears (issue 14). Caught up alone from 0 in one process
# (20,000 orders, 2026-12-07 21:33-21:41, machine shared): notifications 3.2-4.1 s (5.0-5.7 before),
# orders 2.5-2.9, creator_stats 1.3, listings 0.9-1.2; the two sides of the split these weights make,
# notifications alone and the other three, 3.4-4.9 s and 3.5-4.2 s. Each side also reads and
# decodes the whole log, so the times alone do not add up: weighed by them, listings would join
# notifications, the side that already finishes last.
LEASE_WEIGHTS: dict[str, float] = {"notifications": 7.0, "orders": 4.0, "creator_stats": 2.0, "listings": 1.0}


def all_projections(
    settings: Settings, publisher: Publisher | None = None, stores: EventStores | None = None
) -> list[Projection]:
    """`publisher` carries pushes to WebSocket clients; without one (rebuilds) nothing is pushed.
    `stores`: what the side effects read as it stands when they act; only the callers that run side
    effects (a projection runner, a retry of parked events) need them."""
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
        VerificationMailProjection(
            mailer, stored_users(stores), secret_key=settings.secret_key, public_url=settings.public_url
        ),
    ]


def stored_users(stores: EventStores | None) -> StoredUser:
    """A user as the accounts log holds them now."""

    def stored_user(number: int) -> User:
        if stores is None:
            raise RuntimeError("a side effect run without the event stores it reads (all_projections' stores)")
        user: User = stores[Accounts.name].repository.get(aggregate_id("user", number))
        return user

    return stored_user
