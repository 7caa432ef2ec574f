"""Read-only aggregates: kept while their log stands still, never stale after another process wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from eventsourcing.application import AggregateNotFoundError

from commands.accounts import AccountCommands, Register
from commands.read_only import ReadOnlyAggregates, ReadOnlyView
from tests.backends import DATA_KEY
from ugc.accounts import User
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.events import operator_actor
from ugc.ids import aggregate_id
from ugc.platform.database import Database
from ugc.platform.store import Accounts, EventStores

HASHER = PasswordHasher(time_cost=1, memory_cost=8192)


@pytest.fixture
def ours(settings: Settings) -> Iterator[EventStores]:
    opened = EventStores(settings.database_url, data_key=DATA_KEY)
    yield opened
    opened.close()


@pytest.fixture
def theirs(settings: Settings, db: Database) -> Iterator[AccountCommands]:
    """Another process's commands: event stores of their own, on the same database."""
    opened = EventStores(settings.database_url, data_key=DATA_KEY)
    yield AccountCommands(opened, db, MovableClock(), hasher=HASHER)
    opened.close()


@pytest.fixture
def aggregates(ours: EventStores, db: Database) -> ReadOnlyAggregates:
    return ReadOnlyAggregates(ours, db)


def register(accounts: AccountCommands, name: str) -> int:
    return accounts.register(Register(name, f"{name}@example.com", "password-1", "Имя", "Фамилия")).user_id


def user(aggregates: ReadOnlyAggregates, number: int) -> User:
    found: User = aggregates.now([Accounts.name]).get(Accounts.name, aggregate_id("user", number))
    return found


def test_an_aggregate_is_kept_while_its_log_stands_still(
    aggregates: ReadOnlyAggregates, theirs: AccountCommands
) -> None:
    number = register(theirs, "ro_still")
    first = user(aggregates, number)
    assert user(aggregates, number) is first  # nothing appended since: no query for its events, no copy


def test_another_process_write_shows_in_the_next_view(aggregates: ReadOnlyAggregates, theirs: AccountCommands) -> None:
    number = register(theirs, "ro_changed")
    assert user(aggregates, number).roles == []
    theirs.grant_role("ro_changed", "auditor", operator_actor("test"))
    assert user(aggregates, number).roles == ["auditor"]


def test_a_write_to_another_aggregate_of_the_log_reloads_but_changes_nothing(
    aggregates: ReadOnlyAggregates, theirs: AccountCommands
) -> None:
    number = register(theirs, "ro_bystander")
    first = user(aggregates, number)
    register(theirs, "ro_other")
    again = user(aggregates, number)
    assert again is not first and again.version == first.version and again.username == "ro_bystander"
    assert user(aggregates, number) is again


def test_an_unknown_aggregate_is_not_found_and_found_once_it_exists(
    aggregates: ReadOnlyAggregates, theirs: AccountCommands
) -> None:
    with pytest.raises(AggregateNotFoundError):
        user(aggregates, 10**9)
    number = register(theirs, "ro_late")
    assert user(aggregates, number).username == "ro_late"


def now_numbered(
    aggregates: ReadOnlyAggregates, applications: list[str], counts: dict[str, int]
) -> tuple[ReadOnlyView, dict[str, list[int]]]:
    """A view and numbers as a caller reads them: the one statement (PostgreSQL), or on their own (SQLite)."""
    query = aggregates.numbered_query(applications, counts)
    assert (query is None) == (aggregates.db.dialect == "sqlite")
    row = None
    if query is not None:
        with aggregates.db.read() as cur:
            row = cur.execute(*query).fetchone()
    return aggregates.numbered_now(applications, counts, row)


def test_a_view_comes_with_fresh_numbers_in_one_read(aggregates: ReadOnlyAggregates, theirs: AccountCommands) -> None:
    number = register(theirs, "ro_numbered")
    view, first = now_numbered(aggregates, [Accounts.name], {"order": 3, "delivery": 2, "review": 0})
    _, second = now_numbered(aggregates, [Accounts.name], {"order": 2})
    assert len(first["order"]) == 3 and first["order"] == sorted(first["order"]) and len(set(first["order"])) == 3
    assert len(second["order"]) == 2 and min(second["order"]) > max(first["order"])
    assert len(set(first["delivery"])) == 2 and first["review"] == []
    assert view.heads == aggregates.stores.heads([Accounts.name])
    assert view.get(Accounts.name, aggregate_id("user", number)).username == "ro_numbered"
