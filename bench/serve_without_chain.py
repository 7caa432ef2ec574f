"""`ugc serve` appending as the library's own PostgreSQL recorder does, no chain rows: the "without"
side of run_chain_placing.py (and run_chain.py's). Bench only: the application itself has no switch
that turns the chain off.

It migrates once as the application does, then serves with `eventsourcing_settings` replaced in this
process (one uvicorn worker runs in this process, so the replacement holds) and the start-up
migration skipped (it would chain the plain log).

Usage:  UGC_DATABASE_URL=postgresql://... .venv/bin/python bench/serve_without_chain.py serve --port N
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic

import ugc.platform.store as store
import ugc.wiring as wiring
from ugc.cli import main
from ugc.config import Settings
from ugc.platform.chain_postgres import ChainedPostgresRecorder
from ugc.platform.database import Database

CHAINED = store.eventsourcing_settings


class UnchainedRecorder(ChainedPostgresRecorder):
    """The application's recorder, whose reads the commands use (a group's streams and numbers in one
    round trip: `select_streams`), appending with the library's own statements: no chain rows."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        inserted: Sequence[int] | None = PostgresApplicationRecorder.insert_events(self, stored_events, **kwargs)
        return inserted


def plain_settings(database_url: str, app_name: str, *, create_table: bool) -> dict[str, str]:
    """The application's settings with `UnchainedRecorder`: no chain rows written."""
    return CHAINED(database_url, app_name, create_table=create_table) | {
        "APPLICATION_RECORDER_TOPIC": get_topic(UnchainedRecorder)
    }


if __name__ == "__main__":
    db = Database(Settings.from_env().database_url)
    wiring.migrate(db)
    db.close()
    wiring.migrate = lambda db: None
    store.eventsourcing_settings = plain_settings
    sys.exit(main())
