"""Exactly-once projections: a failure mid-batch leaves nothing half-applied; rebuilds equal live runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from eventsourcing.persistence import OperationalError as StoreOperationalError

from commands.accounts import AccountCommands, Register
from commands.creators import CreatorCommands
from projections.accounts import AccountsProjection
from projections.base import Handler, Projection, SideEffectDeferred
from projections.runner import DEFERRED_MAX_BACKOFF, ProjectionRunner
from readmodels import parked, tracking
from readmodels.waiting import Progress
from tests.backends import DATA_KEY
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.creators import CreatorProfile
from ugc.errors import Unavailable
from ugc.platform import metrics
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
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
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
        assert head is not None
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


class StuckOnCreatorsProjection(Projection):
    """A read model of the accounts log that handles only new creator profiles, and never manages to."""

    name = "stuck_on_creators_probe"
    applications = (Accounts.name,)

    def handlers(self) -> Mapping[type, Handler]:
        def handle(cur: Any, event: Any) -> None:
            raise Boom("stuck")

        return {CreatorProfile.Created: handle}


def test_a_stuck_read_model_delays_only_the_commands_whose_events_it_handles(world: World) -> None:
    progress = Progress()
    runner = ProjectionRunner(world.db, world.stores, [AccountsProjection(), StuckOnCreatorsProjection()], progress)
    runner.register()
    runner.start()
    try:
        registered = world.accounts.register(Register("stuckwait", "stuckwait@example.com", "password-1", "Имя", "Ф"))
        world.creators.create_profile(
            registered.user_id, specialization="видео", experience="", portfolio_link="", social_links={}
        )
        # Positions that do not say what was appended wait for every read model of the log.
        with pytest.raises(Unavailable):
            progress.wait(world.db, dict(world.accounts.update_profile(registered.user_id, {"bio": "x"})), 0.3)
        # A command whose events the stuck read model does not handle is not delayed by it.
        started = time.monotonic()
        progress.wait(world.db, world.accounts.update_profile(registered.user_id, {"bio": "био"}), 5.0)
        assert time.monotonic() - started < 1.0
        assert [row["bio"] for row in table(world.db, "users") if row["username"] == "stuckwait"] == ["био"]
        # One whose events it handles still waits for it (and gets its 503).
        other = world.accounts.register(Register("stuckwait2", "stuckwait2@example.com", "password-1", "Имя", "Ф"))
        _, positions = world.creators.create_profile(
            other.user_id, specialization="фото", experience="", portfolio_link="", social_links={}
        )
        with pytest.raises(Unavailable):
            progress.wait(world.db, positions, 0.3)
    finally:
        runner.stop()
        with world.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM projection_tracking WHERE projection = %s", (StuckOnCreatorsProjection.name,))


class PoisonedAccountsProjection(AccountsProjection):
    """The real projection, unable to apply one user's profile updates until healed."""

    def __init__(self, poisoned_bio: str) -> None:
        self.poisoned_bio = poisoned_bio
        self.healed = False

    def profile_updated(self, cur: Any, e: Any) -> None:
        if e.changes.get("bio") == self.poisoned_bio and not self.healed:
            raise Boom("cannot apply this one")
        super().profile_updated(cur, e)


def bios(db: Database, prefix: str) -> dict[str, str]:
    return {row["username"]: row["bio"] for row in table(db, "users") if row["username"].startswith(prefix)}


def test_a_poison_event_is_parked_after_a_few_tries_and_retried_once_fixed(world: World) -> None:
    from projections import operations

    poisoned = PoisonedAccountsProjection("яд")
    progress = Progress()
    runner = ProjectionRunner(world.db, world.stores, [poisoned], progress, max_attempts=3)
    runner.register()
    runner.start()
    try:
        first = world.accounts.register(Register("parkfirst", "parkfirst@example.com", "password-1", "Имя", "Ф"))
        second = world.accounts.register(Register("parksecond", "parksecond@example.com", "password-1", "Имя", "Ф"))
        world.accounts.update_profile(first.user_id, {"bio": "яд"})
        # Later events of the log are applied once the poison is parked, within a command's wait.
        progress.wait(world.db, world.accounts.update_profile(second.user_id, {"bio": "здоров"}), 2.0)
        assert bios(world.db, "park") == {"parkfirst": "", "parksecond": "здоров"}
        states = {s.projection: s for s in operations.status(world.db, world.stores) if s.application == "accounts"}
        assert states["accounts"].parked == 1 and states["accounts"].lag_events == 0
        with world.db.read() as cur:
            [row] = parked.waiting(cur, "accounts")
        assert row["attempts"] == 3 and "Boom: cannot apply this one" in row["error"]
        retried = operations.retry(world.db, world.stores, PoisonedAccountsProjection("яд"))
        assert retried.applied == [] and len(retried.failed) == 1  # not fixed yet: stays parked
        healed = PoisonedAccountsProjection("яд")
        healed.healed = True
        retried = operations.retry(world.db, world.stores, healed)
        assert retried.applied == [("accounts", row["position"])] and retried.failed == []
        assert bios(world.db, "park") == {"parkfirst": "яд", "parksecond": "здоров"}
        assert parked.counts(world.db).get("accounts", 0) == 0
    finally:
        runner.stop()
        with world.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM parked_events")


def test_a_failure_repeated_a_thousand_times_still_backs_off(world: World) -> None:
    """The wait after a failure doubled as `0.025 * 2**failures`: past 1,023 failures in a row (a mail
    server down ~17 hours, or UGC_PROJECTION_MAX_ATTEMPTS set above that) it overflowed a float, and
    the runner's loop failed with OverflowError each round instead of backing off."""
    poisoned = PoisonedAccountsProjection("яд")
    runner = ProjectionRunner(world.db, world.stores, [poisoned], Progress(), max_attempts=2000)
    for error in (Boom("cannot apply this one"), SideEffectDeferred("mail server away")):
        for _ in range(1100):
            assert runner._failed(poisoned, "accounts", error) == {}
        waits = runner._retry_at[(poisoned.name, "accounts")] - time.monotonic()
        assert 0 < waits <= DEFERRED_MAX_BACKOFF


class CutOffAccountsProjection(AccountsProjection):
    """The real projection, whose database is away for its first `outage` tries of one user's
    profile update: the event store says so with its own OperationalError, wrapping the driver's."""

    def __init__(self, bio: str, outage: int) -> None:
        self.bio = bio
        self.outage = outage

    def profile_updated(self, cur: Any, e: Any) -> None:
        if e.changes.get("bio") == self.bio and self.outage:
            self.outage -= 1
            raise StoreOperationalError("server closed the connection unexpectedly")
        super().profile_updated(cur, e)


def failures_of(projection: str) -> float:
    """The failures this process counted for `projection` (its metric's sample)."""
    samples = [sample for family in metrics.PROJECTION_FAILURES.collect() for sample in family.samples]
    return sum(s.value for s in samples if s.name.endswith("_total") and s.labels.get("projection") == projection)


def test_a_lost_database_is_not_the_events_fault_and_never_parks_it(world: World) -> None:
    cut_off = CutOffAccountsProjection("связь", outage=3)
    progress = Progress()
    runner = ProjectionRunner(world.db, world.stores, [cut_off], progress, max_attempts=2)
    runner.register()
    failures = failures_of("accounts")
    runner.start()
    try:
        user = world.accounts.register(Register("cutoff", "cutoff@example.com", "password-1", "Имя", "Ф"))
        progress.wait(world.db, world.accounts.update_profile(user.user_id, {"bio": "связь"}), 10.0)
        assert bios(world.db, "cutoff") == {"cutoff": "связь"} and cut_off.outage == 0
        assert parked.counts(world.db).get("accounts", 0) == 0
        assert failures_of("accounts") == failures
    finally:
        runner.stop()


def test_skip_gives_up_on_an_event_the_projection_is_stuck_on(world: World) -> None:
    from projections import operations

    poisoned = PoisonedAccountsProjection("навсегда")
    progress = Progress()
    runner = ProjectionRunner(world.db, world.stores, [poisoned], progress, max_attempts=1000)
    runner.register()
    runner.start()
    try:
        user = world.accounts.register(Register("skipper", "skipper@example.com", "password-1", "Имя", "Ф"))
        applied = world.accounts.update_profile(user.user_id, {"bio": "сначала"})
        progress.wait(world.db, applied, 5.0)
        stuck = world.accounts.update_profile(user.user_id, {"bio": "навсегда"})
        with pytest.raises(Unavailable):
            progress.wait(world.db, stuck, 0.3)
        # What it applied already, and what the log does not hold, it cannot give up on.
        for position, refusal in [
            (applied["accounts"], "applied event"),
            (stuck["accounts"] + 1000, "has no event"),
            (0, "has no event"),
        ]:
            with pytest.raises(operations.NotSkippable, match=refusal):
                operations.skip(world.db, world.stores, poisoned, "accounts", position)
        operations.skip(world.db, world.stores, poisoned, "accounts", stuck["accounts"])
        progress.wait(world.db, world.accounts.update_profile(user.user_id, {"bio": "дальше"}), 5.0)
        assert bios(world.db, "skipper") == {"skipper": "дальше"}
        assert parked.counts(world.db).get("accounts", 0) == 0  # skipped is not parked
        with world.db.read() as cur:
            skipped = cur.execute("SELECT position FROM parked_events WHERE projection = 'accounts'").fetchall()
        assert [row["position"] for row in skipped] == [stuck["accounts"]]
    finally:
        runner.stop()
        with world.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM parked_events")
