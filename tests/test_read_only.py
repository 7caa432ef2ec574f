"""Read-only aggregates: kept while their log stands still, never stale after another process wrote."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher
from eventsourcing.application import AggregateNotFoundError

from commands.accounts import AccountCommands, Register
from commands.read_only import ReadOnlyAggregates, SharedHeads
from readmodels.migrations import migrate
from ugc.accounts import User
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.database import Database
from ugc.ids import aggregate_id
from ugc.store import Accounts, EventStores

HASHER = PasswordHasher(time_cost=1, memory_cost=8192)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    migrate(database)
    yield database
    database.close()


@pytest.fixture
def ours(settings: Settings) -> Iterator[EventStores]:
    opened = EventStores(settings.database_url)
    yield opened
    opened.close()


@pytest.fixture
def theirs(settings: Settings, db: Database) -> Iterator[AccountCommands]:
    """Another process's commands: event stores of their own, on the same database."""
    opened = EventStores(settings.database_url)
    yield AccountCommands(opened, db, MovableClock(), hasher=HASHER)
    opened.close()


def register(accounts: AccountCommands, name: str) -> int:
    return accounts.register(Register(name, f"{name}@example.com", "password-1", "Имя", "Фамилия")).user_id


def user(aggregates: ReadOnlyAggregates, number: int) -> User:
    found: User = aggregates.now([Accounts.name]).get(Accounts.name, aggregate_id("user", number))
    return found


def test_an_aggregate_is_kept_while_its_log_stands_still(ours: EventStores, theirs: AccountCommands) -> None:
    number = register(theirs, "ro_still")
    aggregates = ReadOnlyAggregates(ours)
    first = user(aggregates, number)
    assert user(aggregates, number) is first  # nothing appended since: no query for its events, no copy


def test_another_process_write_shows_in_the_next_view(ours: EventStores, theirs: AccountCommands) -> None:
    number = register(theirs, "ro_changed")
    aggregates = ReadOnlyAggregates(ours)
    assert user(aggregates, number).roles == []
    theirs.grant_role("ro_changed", "auditor")
    assert user(aggregates, number).roles == ["auditor"]


def test_a_write_to_another_aggregate_of_the_log_reloads_but_changes_nothing(
    ours: EventStores, theirs: AccountCommands
) -> None:
    number = register(theirs, "ro_bystander")
    aggregates = ReadOnlyAggregates(ours)
    first = user(aggregates, number)
    register(theirs, "ro_other")
    again = user(aggregates, number)
    assert again is not first and again.version == first.version and again.username == "ro_bystander"
    assert user(aggregates, number) is again


def test_an_unknown_aggregate_is_not_found_and_found_once_it_exists(ours: EventStores, theirs: AccountCommands) -> None:
    aggregates = ReadOnlyAggregates(ours)
    with pytest.raises(AggregateNotFoundError):
        user(aggregates, 10**9)
    number = register(theirs, "ro_late")
    assert user(aggregates, number).username == "ro_late"


def test_callers_arriving_during_a_read_share_the_next_one(ours: EventStores, theirs: AccountCommands) -> None:
    shared = SharedHeads(ours, [Accounts.name])
    calls: list[int] = []
    first_began, release = threading.Event(), threading.Event()
    heads = ours.heads

    def counted(names: Any = None) -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            first_began.set()
            release.wait(5)  # the read under way began before the write below: it must not serve anyone after
        return heads(names)

    ours.heads = counted  # type: ignore[method-assign]  # the real read, counted and held once
    with ThreadPoolExecutor(max_workers=12) as pool:
        early = pool.submit(shared.read)
        assert first_began.wait(5)
        written = theirs.register(Register("ro_shared", "ro_shared@example.com", "password-1", "Имя", "Фамилия"))
        late = [pool.submit(shared.read) for _ in range(10)]
        time.sleep(0.2)  # all ten wait for the read under way, then for the next one
        release.set()
        answers = [f.result(5) for f in late]
        early.result(5)
    assert len(calls) == 2
    assert all(answer[Accounts.name] >= written.positions[Accounts.name] for answer in answers)


def test_every_reader_sees_the_writes_made_before_it_read(ours: EventStores, theirs: AccountCommands) -> None:
    shared = SharedHeads(ours, [Accounts.name])

    def write_then_read(n: int) -> tuple[int, int]:
        written = theirs.register(Register(f"ro_rw{n}", f"ro_rw{n}@example.com", "password-1", "Имя", "Фамилия"))
        return written.positions[Accounts.name], shared.read()[Accounts.name]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(write_then_read, range(40)))
    assert all(seen >= written for written, seen in outcomes)


def test_a_failed_read_fails_its_caller_alone(ours: EventStores) -> None:
    shared = SharedHeads(ours, [Accounts.name])
    heads = ours.heads
    failures = [RuntimeError("database away")]

    def flaky(names: Any = None) -> dict[str, int]:
        if failures:
            raise failures.pop()
        return heads(names)

    ours.heads = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="database away"):
        shared.read()
    assert shared.read() == heads([Accounts.name])
