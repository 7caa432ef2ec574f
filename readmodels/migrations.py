"""`ugc migrate`: create every table once, under a lock, so concurrent starts never race."""

from __future__ import annotations

from readmodels.schema import create_tables
from ugc.platform.database import Database
from ugc.platform.store import create_event_tables


def migrate(db: Database) -> None:
    """Create the event store's and the read side's tables; safe to run from many processes."""
    with db.exclusive_lock("migrate"):
        create_event_tables(db.url)
        create_tables(db)
