"""Group commit: many threads' new aggregates appended in shared transactions, nothing lost or mixed up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from commands.group_commit import GroupCommit
from readmodels.migrations import migrate
from ugc.database import Database
from ugc.store import eventsourcing_settings

NAMESPACE = UUID("6f1c0a52-5a43-4b0e-9a7c-2f0f3b6d8e11")


class Probe(Aggregate):
    """A numbered thing, made only to be appended."""

    def __init__(self, series: str, number: int, label: str) -> None:
        self.number = number
        self.label = label

    @staticmethod
    def create_id(series: str, number: int, label: str) -> UUID:
        return uuid5(NAMESPACE, f"{series}/{number}")


class Probes(Application[UUID]):
    name = "probes"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database)
    yield database
    database.close()


@pytest.fixture
def app(database_url: str) -> Iterator[Application[UUID]]:
    probes = Probes(env=eventsourcing_settings(database_url, Probes.name, create_table=True))
    yield probes
    probes.close()


@pytest.fixture
def kind(db: Database) -> str:
    """A sequence of its own per test: the module's database outlives each test."""
    name = f"probe_{uuid4().hex[:12]}"
    with db.transaction(write=True) as cur:
        db.create_sequence(cur, name)
    return name


def test_one_caller_alone_appends_at_once(db: Database, app: Application[UUID], kind: str) -> None:
    group: GroupCommit[Probe] = GroupCommit(app, db, kind)
    created, positions = group.append(lambda number: Probe(kind, number, "alone"))
    assert created.number == 1
    assert positions == {"probes": app.recorder.max_notification_id()}
    assert app.repository.get(created.id).label == "alone"


def test_concurrent_callers_share_transactions_and_each_gets_its_own_aggregate(
    db: Database, app: Application[UUID], kind: str
) -> None:
    group: GroupCommit[Probe] = GroupCommit(app, db, kind)
    saves: list[int] = []
    save = app.save

    def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append(len(aggregates))
        return save(*aggregates, **kwargs)

    app.save = counting_save  # type: ignore[method-assign]  # counts the real save's calls
    callers = 200
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda i: group.append(lambda n: Probe(kind, n, f"caller {i}")), range(callers)))
    labels = [created.label for created, _ in results]
    assert labels == [f"caller {i}" for i in range(callers)]
    assert sorted(created.number for created, _ in results) == list(range(1, callers + 1))
    assert sum(saves) == callers and len(saves) < callers  # some transactions carried several
    for created, positions in results:
        stored = app.repository.get(created.id)
        assert (stored.number, stored.label) == (created.number, created.label)
        # The position is where this aggregate's own event landed.
        [notification] = [
            n
            for n in app.recorder.select_notifications(start=positions["probes"], limit=1)
            if n.originator_id == created.id
        ]
        assert notification.id == positions["probes"]


def test_a_caller_whose_aggregate_cannot_be_made_fails_alone(db: Database, app: Application[UUID], kind: str) -> None:
    group: GroupCommit[Probe] = GroupCommit(app, db, kind)

    def make(i: int) -> Any:
        def build(number: int) -> Probe:
            if i % 5 == 0:
                raise ValueError(f"caller {i} refused")
            return Probe(kind, number, f"caller {i}")

        return build

    def call(i: int) -> str:
        try:
            return group.append(make(i))[0].label
        except ValueError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(call, range(60)))
    assert outcomes == [f"caller {i} refused" if i % 5 == 0 else f"caller {i}" for i in range(60)]


def test_a_failed_save_fails_every_caller_of_its_group_and_writes_nothing(
    db: Database, app: Application[UUID], kind: str
) -> None:
    group: GroupCommit[Probe] = GroupCommit(app, db, kind)
    taken, _ = group.append(lambda number: Probe(kind, number, "first"))
    before = app.recorder.max_notification_id()
    # A second aggregate with the first one's id clashes on the store's own constraint.
    clash = Probe.create_id(kind, taken.number, "")
    entered, release = threading.Event(), threading.Event()
    save = app.save

    def held_save(*aggregates: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(5)  # let the others queue into one group behind the first caller's
        return save(*aggregates, **kwargs)

    app.save = held_save  # type: ignore[method-assign]  # the real save, only later

    def clashing(number: int) -> Probe:
        return Probe(kind, taken.number, "again")

    def call(make: Any) -> str:
        try:
            group.append(make)
            return "saved"
        except Exception as error:
            return type(error).__name__

    with ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(call, lambda n: Probe(kind, n, "leader"))
        assert entered.wait(5)
        followers = [
            pool.submit(call, clashing if i == 3 else (lambda n: Probe(kind, n, "follower"))) for i in range(6)
        ]
        threading.Timer(0.3, release.set).start()
        outcomes = [leader.result(10), *(f.result(10) for f in followers)]
    assert outcomes[0] == "saved"
    assert set(outcomes[1:]) == {"IntegrityError"}
    assert app.recorder.max_notification_id() == before + 1  # the leader's only
    assert app.repository.get(clash).label == "first"
