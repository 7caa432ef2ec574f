"""Exactly-once projections: a failure mid-batch leaves nothing half-applied; rebuilds equal live runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher

from commands.accounts import AccountCommands, Register
from commands.creators import CreatorCommands
from projections.accounts import AccountsProjection
from projections.base import Handler, Projection
from projections.runner import ProjectionRunner
from readmodels import tracking
from readmodels.waiting import Progress
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import Accounts, EventStores
from ugc.wiring import migrate


class Boom(Exception):
    pass


class FailingAccountsProjection(AccountsProjection):
    """The real projection, made to raise on the n-th event it handles (counted from 1)."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.handled = 0

    def handlers(self) -> Mapping[type, Handler]:
        def counting(handler: Any) -> Handler:
            def handle(cur: Any, event: Any) -> None:
                self.handled += 1
                if self.handled == self.fail_at:
                    raise Boom(f"injected failure at event {self.fail_at}")
                handler(cur, event)

            return handle

        return {event_class: counting(handler) for event_class, handler in super().handlers().items()}


@dataclass
class World:
    db: Database
    stores: EventStores
    accounts: AccountCommands
    creators: CreatorCommands


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    """The write side with no live runner: projections run only when a test says so."""
    db = Database(settings.database_url)
    migrate(db)
    stores = EventStores(settings.database_url)
    clock = MovableClock()
    hasher = PasswordHasher(time_cost=1, memory_cost=8192)
    try:
        yield World(db, stores, AccountCommands(stores, db, clock, hasher=hasher), CreatorCommands(stores, db, clock))
    finally:
        stores.close()
        db.close()


def table(db: Database, name: str) -> list[dict[str, Any]]:
    with db.transaction() as cur:
        return cur.execute(f"SELECT * FROM {name} ORDER BY id").fetchall()


def snapshot(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return table(db, "users"), table(db, "creator_profiles")


def write_history(world: World, prefix: str, users: int) -> None:
    for i in range(users):
        registered = world.accounts.register(
            Register(f"{prefix}{i}", f"{prefix}{i}@example.com", "password-1", "Имя", f"{i}")
        )
        world.accounts.update_profile(registered.user_id, {"bio": f"био {i}"})
        if i % 2 == 0:
            world.creators.create_profile(
                registered.user_id, specialization="видео", experience="", portfolio_link="", social_links={}
            )


def runner_for(world: World, projection: AccountsProjection, batch_size: int) -> ProjectionRunner:
    runner = ProjectionRunner(world.db, world.stores, [projection], Progress(), batch_size=batch_size)
    runner.register()
    return runner


def test_a_failure_mid_batch_leaves_no_half_applied_rows(world: World) -> None:
    write_history(world, "mid", 10)  # 10 users: 3 events each (claims, user, token) + update; 5 profiles
    runner = runner_for(world, AccountsProjection(), batch_size=20)
    runner.reset(AccountsProjection())
    before = snapshot(world.db)

    failing = runner_for(world, FailingAccountsProjection(fail_at=7), batch_size=20)
    with pytest.raises(Boom):
        failing.run_once(failing.projections[0])
    assert snapshot(world.db) == before, "the failed batch left rows behind"
    with world.db.transaction() as cur:
        assert tracking.position(cur, "accounts", "accounts") == 0

    runner.catch_up()
    recovered = snapshot(world.db)

    runner.reset(AccountsProjection())
    runner.catch_up()
    assert snapshot(world.db) == recovered
    assert len(recovered[0]) >= 10 and len(recovered[1]) >= 5


def test_a_failure_in_a_later_batch_keeps_the_earlier_batches(world: World) -> None:
    write_history(world, "late", 6)
    runner = runner_for(world, AccountsProjection(), batch_size=5)
    runner.reset(AccountsProjection())
    failing = runner_for(world, FailingAccountsProjection(fail_at=12), batch_size=5)
    committed = 0
    with pytest.raises(Boom):
        while True:
            committed += failing.run_once(failing.projections[0])
    with world.db.transaction() as cur:
        position = tracking.position(cur, "accounts", "accounts")
    assert position > 0, "earlier batches should have committed"
    partial = snapshot(world.db)

    runner.catch_up()
    finished = snapshot(world.db)
    runner.reset(AccountsProjection())
    runner.catch_up()
    assert snapshot(world.db) == finished
    assert len(partial[0]) < len(finished[0])


def test_two_runners_racing_on_one_projection_apply_each_event_once(world: World) -> None:
    write_history(world, "twin", 8)
    runners = [runner_for(world, AccountsProjection(), batch_size=3) for _ in range(2)]
    first = runners[0]
    first.reset(AccountsProjection())
    start = threading.Barrier(len(runners))

    def drain(runner: ProjectionRunner) -> None:
        start.wait()
        while runner.run_once(runner.projections[0]):
            pass

    threads = [threading.Thread(target=drain, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together = snapshot(world.db)
    first.reset(AccountsProjection())
    first.catch_up()
    assert snapshot(world.db) == together


class FlakyProjection(Projection):
    """A read model of the accounts log with no table, failing every event until healed."""

    name = "flaky_probe"
    applications = (Accounts.name,)

    def __init__(self) -> None:
        self.broken = True
        self.applied: list[int] = []

    def handlers(self) -> Mapping[type, Handler]:
        def handle(cur: Any, event: Any) -> None:
            if self.broken:
                raise Boom("still broken")
            self.applied.append(self.position)

        return dict.fromkeys(AccountsProjection().handlers(), handle)


def positions_of(db: Database) -> dict[str, int]:
    with db.transaction() as cur:
        return tracking.positions(cur, Accounts.name, ["accounts", FlakyProjection.name])


def eventually(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_failing_read_model_backs_off_alone_while_the_others_follow_the_log(world: World) -> None:
    flaky = FlakyProjection()
    runner = ProjectionRunner(world.db, world.stores, [AccountsProjection(), flaky], Progress())
    runner.register()
    runner.start()
    try:
        write_history(world, "flaky", 3)
        head = world.stores.accounts.recorder.max_notification_id()
        eventually(lambda: positions_of(world.db)["accounts"] == head)
        assert positions_of(world.db)[FlakyProjection.name] == 0 and flaky.applied == []
        flaky.broken = False
        eventually(lambda: positions_of(world.db)[FlakyProjection.name] == head)
        assert flaky.applied == sorted(set(flaky.applied)) and flaky.applied[-1] <= head
    finally:
        runner.stop()
        with world.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM projection_tracking WHERE projection = %s", (FlakyProjection.name,))


def test_a_rebuild_by_another_process_under_a_runner_that_remembers_its_positions(world: World) -> None:
    write_history(world, "reb", 4)
    live = runner_for(world, AccountsProjection(), batch_size=500)
    live.reset(AccountsProjection())
    live.catch_up()  # it remembers where it stands from now on
    write_history(world, "reb_more", 3)
    rebuilder = runner_for(world, AccountsProjection(), batch_size=500)
    rebuilder.reset(AccountsProjection())
    rebuilder.catch_up()  # past what the live runner remembers: from there it would write rows again
    write_history(world, "reb_late", 2)
    live.catch_up()  # no error: it starts over from the positions as stored
    followed = snapshot(world.db)
    rebuilder.reset(AccountsProjection())
    rebuilder.catch_up()
    assert snapshot(world.db) == followed
    assert len(followed[0]) >= 9
