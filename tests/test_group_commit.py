"""Group commit: many threads' new aggregates appended in shared transactions, nothing lost or mixed up."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from commands.group_commit import GroupCommit, Preparing
from ugc.events import current_request
from ugc.platform.store import eventsourcing_settings

NAMESPACE = UUID("6f1c0a52-5a43-4b0e-9a7c-2f0f3b6d8e11")


class Probe(Aggregate):
    """A numbered thing, made only to be appended."""

    def __init__(self, series: str, number: int, label: str) -> None:
        self.number = number
        self.label = label
        self.counted = 0

    @event("Counted")
    def count(self) -> None:
        self.counted += 1

    @event("Relabelled")
    def relabel(self, label: str) -> None:
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


def counted_once(probe: Probe) -> int:
    """Count `probe` once; its count then."""
    probe.count()
    return probe.counted


class Numbers:
    """A sequence of numbers, as the database's, as `GroupCommit`'s prepare: each call takes the next
    `count` for the new aggregates, then the next ones of each kind `numbered` asks for; a call's
    `count` and `numbered` are recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last = 0
        self.calls: list[tuple[int, dict[str, int]]] = []

    def __call__(self, count: int, numbered: Mapping[str, int]) -> Preparing[int]:
        with self._lock:
            self.calls.append((count, dict(numbered)))
            prepared = self._next(count), {kind: self._next(n) for kind, n in numbered.items()}
        return Preparing(None, lambda _: prepared)

    def _next(self, count: int) -> list[int]:
        self.last += count
        return list(range(self.last - count + 1, self.last + 1))


def count_saves(app: Application[UUID]) -> list[int]:
    """The real save from now on, each call's number of aggregates appended to the list returned."""
    saves: list[int] = []
    save = app.save

    def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append(len(aggregates))
        return save(*aggregates, **kwargs)

    app.save = counting_save  # type: ignore[method-assign]
    return saves


def test_one_caller_alone_appends_at_once(app: Application[UUID], kind: str) -> None:
    probe, positions = GroupCommit[int, Probe](app, Numbers()).append(lambda number: Probe(kind, number, "alone"))
    assert probe.number == 1
    assert positions == {"probes": app.recorder.max_notification_id()}
    assert app.repository.get(probe.id).label == "alone"


def test_concurrent_callers_share_transactions_and_each_learns_where_its_own_events_landed(
    app: Application[UUID], kind: str
) -> None:
    numbers = Numbers()
    group = GroupCommit[int, Probe](app, numbers)
    saves = count_saves(app)
    labels = [f"caller {i}" for i in range(200)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        appended = list(pool.map(lambda label: group.append(lambda number: Probe(kind, number, label)), labels))
    assert sum(saves) == len(labels) and len(saves) < len(labels)  # some transactions carried several
    assert [count for count, _ in numbers.calls] == saves  # one call for the numbers of each group
    assert sorted(probe.number for probe, _ in appended) == list(range(1, 201))
    for label, (probe, landed) in zip(labels, appended, strict=True):
        assert probe.label == label
        assert app.repository.get(probe.id).label == label
        [notification] = app.recorder.select_notifications(start=landed["probes"], limit=1)
        assert notification.originator_id == probe.id


def test_each_aggregate_is_made_in_its_callers_context_whoever_leads(app: Application[UUID], kind: str) -> None:
    """The request id an event records is its own caller's, though the group's leader makes it."""
    group = GroupCommit[int, Probe](app, Numbers())
    leaders: set[int] = set()

    def place(label: str) -> tuple[str, str | None]:
        current_request.set(label)

        def make(number: int) -> Probe:
            leaders.add(threading.get_ident())
            return Probe(kind, number, str(current_request.get()))

        probe, _ = group.append(make)
        return label, probe.label

    with ThreadPoolExecutor(max_workers=16) as pool:
        made = list(pool.map(place, [f"request {i}" for i in range(100)]))
    assert [label for label, _ in made] == [recorded for _, recorded in made]
    assert len(leaders) < 100  # some were made by another caller's thread


def test_a_failed_save_fails_every_caller_of_its_group_and_writes_none_of_it(app: Application[UUID], kind: str) -> None:
    group = GroupCommit[int, Probe](app, Numbers())
    first, _ = group.append(lambda number: Probe(kind, number, "first"))
    entered, release = threading.Event(), threading.Event()
    save = app.save

    def held_save(*aggregates: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(5)  # the others queue meanwhile, and go together in the next group
        return save(*aggregates, **kwargs)

    app.save = held_save  # type: ignore[method-assign]  # the real save, only later

    made: list[Probe] = []

    def call(label: str, number: int | None = None) -> str:
        def make(fresh: int) -> Probe:
            made.append(Probe(kind, fresh if number is None else number, label))
            return made[-1]

        try:
            group.append(make)
            return "saved"
        except Exception as error:
            return type(error).__name__

    with ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(call, "leader")
        assert entered.wait(5)
        # The fourth follower's aggregate takes the first one's number: the store's own constraint refuses it.
        queued = [pool.submit(call, f"follower {i}", 1 if i == 3 else None) for i in range(6)]
        threading.Timer(0.3, release.set).start()
        outcomes = [leader.result(10), *(f.result(10) for f in queued)]
    assert outcomes == ["saved"] + ["IntegrityError"] * 6
    assert app.repository.get(first.id).label == "first"
    followers = [probe for probe in made if probe.label.startswith("follower")]
    assert len(followers) == 6
    for probe in followers:
        if probe.id != first.id:
            with pytest.raises(AggregateNotFoundError):
                app.repository.get(probe.id)


def test_a_failure_to_make_fails_that_caller_alone(app: Application[UUID], kind: str) -> None:
    group = GroupCommit[int, Probe](app, Numbers())

    def make(label: str) -> Callable[[int], Probe]:
        def made(number: int) -> Probe:
            if label == "refused":
                raise ValueError(label)
            return Probe(kind, number, label)

        return made

    labels = ["refused" if i % 5 == 0 else f"caller {i}" for i in range(40)]

    def call(label: str) -> str:
        try:
            probe, _ = group.append(make(label))
            return app.repository.get(probe.id).label
        except ValueError as error:
            return f"ValueError {error}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(call, labels))
    assert outcomes == [f"ValueError {label}" if label == "refused" else label for label in labels]


def test_changes_of_many_callers_share_saves_none_is_lost_and_each_learns_where_it_landed(
    app: Application[UUID], kind: str
) -> None:
    """Four callers per aggregate at once: a group takes one of them, the others wait for the next
    groups and are decided on its outcome, so none clashes and every one counts."""
    probes = [Probe(kind, number, f"probe {number}") for number in range(8)]
    app.save(*probes)
    group = GroupCommit[int, Probe](app, Numbers())
    saves = count_saves(app)

    def bump(index: int) -> tuple[UUID, int, dict[str, int]]:
        probe_id = probes[index % len(probes)].id
        _, counted, positions = group.change(probe_id, counted_once)
        return probe_id, counted, positions

    with ThreadPoolExecutor(max_workers=32) as pool:
        landed = list(pool.map(bump, range(160)))
    assert [app.repository.get(p.id).counted for p in probes] == [20] * len(probes)
    assert sum(saves) == 160 and len(saves) < 160  # some transactions carried several callers' changes
    for probe in probes:  # each caller saw its own count: decided one after the other
        assert sorted(counted for probe_id, counted, _ in landed if probe_id == probe.id) == list(range(1, 21))
    for probe_id, _, positions in landed:
        [notification] = app.recorder.select_notifications(start=positions["probes"], limit=1)
        assert notification.originator_id == probe_id


def test_a_change_is_decided_in_its_callers_context_and_a_refusal_fails_it_alone(
    app: Application[UUID], kind: str
) -> None:
    probes = [Probe(kind, number, f"probe {number}") for number in range(10)]
    app.save(*probes)
    group = GroupCommit[int, Probe](app, Numbers())

    def decide(probe: Probe) -> str | None:
        if probe.number % 3 == 0:
            raise ValueError(probe.label)
        probe.count()
        return current_request.get()

    def call(probe: Probe) -> str | None:
        current_request.set(f"request of {probe.label}")
        try:
            return group.change(probe.id, decide)[1]
        except ValueError as error:
            return f"refused {error}"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(call, probes))
    assert outcomes == [f"refused {p.label}" if p.number % 3 == 0 else f"request of {p.label}" for p in probes]
    assert [app.repository.get(p.id).counted for p in probes] == [0 if p.number % 3 == 0 else 1 for p in probes]
    with pytest.raises(AggregateNotFoundError):
        group.change(Probe.create_id(kind, 999, ""), decide)


def test_numbered_changes_get_their_numbers_from_the_groups_one_prepare_call(app: Application[UUID], kind: str) -> None:
    """A change that asks for a fresh number is decided with one of its own, taken by the leader
    together with the new aggregates' numbers: one prepare call per group, not one per change."""
    probes = [Probe(kind, number, f"probe {number}") for number in range(40)]
    app.save(*probes)
    numbers = Numbers()
    group = GroupCommit[int, Probe](app, numbers)
    saves = count_saves(app)

    def relabelled(probe: Probe, number: int | None) -> int | None:
        probe.relabel(f"delivery {number}")
        return number

    def call(index: int) -> int:
        if index % 4 == 0:
            return group.append(lambda number: Probe(kind, 1000 + number, "new"))[0].number - 1000
        [_, number, _] = group.change_numbered(probes[index].id, "delivery", relabelled)
        if index % 4 == 1:
            group.change(probes[index].id, lambda p: p.count())  # no number asked for: none taken
        assert number is not None  # "delivery" asked for one
        return number

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(call, range(len(probes))))
    assert len(set(got)) == len(got) == numbers.last  # every number unique, none taken for nothing
    assert len(numbers.calls) <= len(saves) and len(numbers.calls) < len(got)  # one a group, groups of several
    assert sum(numbered.get("delivery", 0) for _, numbered in numbers.calls) == 30
    for index, probe in enumerate(probes):
        if index % 4:
            assert app.repository.get(probe.id).label == f"delivery {got[index]}"


def test_a_groups_preparing_statement_is_read_in_the_round_trip_that_loads_its_aggregates(
    app: Application[UUID], kind: str, backend: str
) -> None:
    """On PostgreSQL the leader reads the statement that prepares its group (a new aggregate's
    number, here) together with the streams of the aggregates its changes are about, one read for
    both; SQLite has no statement to share and prepares on its own."""
    probe = Probe(kind, 1, "kept")
    app.save(probe)
    group = GroupCommit[int, Probe](app, lambda count, numbered: Preparing(query, finish))
    query = ("SELECT %s::bigint AS next", (7,)) if backend == "postgres" else None
    rows: list[Any] = []

    def finish(row: Any) -> tuple[list[int], dict[str, list[int]]]:
        rows.append(row)
        return [row["next"] if row is not None else 7], {}

    reads: list[tuple[int, bool]] = []
    select_streams = app.recorder.select_streams  # type: ignore[attr-defined]

    def counted(after: Mapping[UUID, int], beside: Any = None) -> Any:
        reads.append((len(after), beside is not None))
        return select_streams(after, beside)

    app.recorder.select_streams = counted  # type: ignore[attr-defined]
    made, _ = group.append(lambda number: Probe(kind, 1000 + number, "new"))
    group.change(probe.id, lambda p: p.count())
    assert made.number == 1007 and rows == [{"next": 7} if backend == "postgres" else None]
    # The placing alone: the statement read alone (PostgreSQL); the change alone: its stream alone.
    assert reads == ([(0, True), (1, False)] if backend == "postgres" else [(1, False)])
    assert app.repository.get(probe.id).counted == 1


def test_a_change_is_decided_on_what_another_process_appended_since_it_was_kept(
    app: Application[UUID], kind: str
) -> None:
    """The leader keeps what it saved and reads only the events appended since: another writer's too."""
    probe = Probe(kind, 1, "kept")
    app.save(probe)
    group = GroupCommit[int, Probe](app, Numbers())
    assert group.change(probe.id, lambda p: p.count())[0].counted == 1  # kept from here on
    elsewhere: Probe = app.repository.get(probe.id)
    elsewhere.count()
    app.save(elsewhere)  # another process's writer
    changed, counted, _ = group.change(probe.id, counted_once)
    assert (counted, changed.version) == (3, 4)
    assert app.repository.get(probe.id).counted == 3


def test_placing_and_changes_share_a_group_and_a_change_that_clashes_fails_alone(
    app: Application[UUID], kind: str
) -> None:
    """New and changed aggregates go in one transaction; when another writer appended to a changed
    one after the group loaded it, that change fails (its caller decides again, `saving.retrying`)
    and the group's new aggregates are appended without it."""
    contested, other = Probe(kind, 1000, "contested"), Probe(kind, 1001, "other")
    app.save(contested, other)
    group = GroupCommit[int, Probe](app, Numbers())
    entered, release = threading.Event(), threading.Event()
    save = app.save
    saves: list[int] = []

    def held_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append(len(aggregates))
        if len(saves) == 1:
            entered.set()
            release.wait(5)  # the others queue meanwhile, and go together in the next group
        if len(saves) == 2:  # loaded and decided: another process's writer appends to it first
            elsewhere: Probe = app.repository.get(contested.id)
            elsewhere.count()
            save(elsewhere)
        return save(*aggregates, **kwargs)

    app.save = held_save  # type: ignore[method-assign]  # the real save, only later

    def change_of(probe: Probe) -> str:
        try:
            group.change(probe.id, lambda p: p.count())
            return "saved"
        except IntegrityError:
            return "IntegrityError"

    def placing(label: str) -> str:
        probe, _ = group.append(lambda number: Probe(kind, number, label))
        return app.repository.get(probe.id).label

    with ThreadPoolExecutor(max_workers=4) as pool:
        leading = pool.submit(change_of, other)
        assert entered.wait(5)
        queued = [pool.submit(change_of, contested), pool.submit(placing, "new")]
        threading.Timer(0.3, release.set).start()
        outcomes = [leading.result(10), *(f.result(10) for f in queued)]
    assert outcomes == ["saved", "IntegrityError", "new"]
    assert saves == [1, 2, 1]  # the change and the new one together, then the new one alone
    assert app.repository.get(contested.id).counted == 1  # the other writer's count only
    assert group.change(contested.id, lambda p: p.count())[0].counted == 2  # decided again: on the new state
