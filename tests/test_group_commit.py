"""Group commit: many threads' new aggregates appended in shared transactions, nothing lost or mixed up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from commands.group_commit import GroupCommit
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
def app(database_url: str) -> Iterator[Application[UUID]]:
    probes = Probes(env=eventsourcing_settings(database_url, Probes.name, create_table=True))
    yield probes
    probes.close()


@pytest.fixture
def kind() -> str:
    """A series of ids of its own per test: the module's event store outlives each test."""
    return uuid4().hex


def test_one_caller_alone_appends_at_once(app: Application[UUID], kind: str) -> None:
    probe = Probe(kind, 1, "alone")
    positions = GroupCommit(app).append(probe)
    assert positions == {"probes": app.recorder.max_notification_id()}
    assert app.repository.get(probe.id).label == "alone"


def test_concurrent_callers_share_transactions_and_each_learns_where_its_own_events_landed(
    app: Application[UUID], kind: str
) -> None:
    group = GroupCommit(app)
    saves: list[int] = []
    save = app.save

    def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append(len(aggregates))
        return save(*aggregates, **kwargs)

    app.save = counting_save  # type: ignore[method-assign]  # counts the real save's calls
    probes = [Probe(kind, number, f"caller {number}") for number in range(1, 201)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        positions = list(pool.map(group.append, probes))
    assert sum(saves) == len(probes) and len(saves) < len(probes)  # some transactions carried several
    for probe, landed in zip(probes, positions, strict=True):
        assert app.repository.get(probe.id).label == probe.label
        [notification] = app.recorder.select_notifications(start=landed["probes"], limit=1)
        assert notification.originator_id == probe.id


def test_a_failed_save_fails_every_caller_of_its_group_and_writes_none_of_it(app: Application[UUID], kind: str) -> None:
    group = GroupCommit(app)
    first = Probe(kind, 1, "first")
    group.append(first)
    entered, release = threading.Event(), threading.Event()
    save = app.save

    def held_save(*aggregates: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(5)  # the others queue meanwhile, and go together in the next group
        return save(*aggregates, **kwargs)

    app.save = held_save  # type: ignore[method-assign]  # the real save, only later

    def call(probe: Probe) -> str:
        try:
            group.append(probe)
            return "saved"
        except Exception as error:
            return type(error).__name__

    # The fourth follower's aggregate has the first one's id: the store's own constraint refuses it.
    followers = [Probe(kind, 1 if i == 3 else 10 + i, f"follower {i}") for i in range(6)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(call, Probe(kind, 2, "leader"))
        assert entered.wait(5)
        queued = [pool.submit(call, probe) for probe in followers]
        threading.Timer(0.3, release.set).start()
        outcomes = [leader.result(10), *(f.result(10) for f in queued)]
    assert outcomes == ["saved"] + ["IntegrityError"] * len(followers)
    assert app.repository.get(first.id).label == "first"
    for probe in followers:
        if probe.id != first.id:
            with pytest.raises(AggregateNotFoundError):
                app.repository.get(probe.id)
