"""The heads of every event log, read at once: what the projection runner asks before each round."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from commands.accounts import AccountCommands, Register
from tests.backends import DATA_KEY
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate


@pytest.fixture
def stores(settings: Settings) -> Iterator[EventStores]:
    db = Database(settings.database_url)
    migrate(db)
    opened = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        accounts = AccountCommands(opened, db, MovableClock(), hasher=PasswordHasher(time_cost=1, memory_cost=8192))
        accounts.register(Register("heads", "heads@example.com", "password-1", "Имя", "Фамилия"))
        yield opened
    finally:
        opened.close()
        db.close()


def test_heads_are_each_logs_last_notification_id_and_zero_for_an_empty_log(stores: EventStores) -> None:
    one_by_one = {name: app.recorder.max_notification_id() or 0 for name, app in stores.applications.items()}
    assert one_by_one["accounts"] > 0 and one_by_one["orders"] == 0
    assert stores.heads() == one_by_one
    assert stores.heads(["accounts", "orders"]) == {"accounts": one_by_one["accounts"], "orders": 0}
    assert stores.heads([]) == {}
