"""Appending to an event store and reporting where the events landed; the one way to change an aggregate."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from commands.intents import announce
from ugc.errors import PreconditionFailed, StaleVersion
from ugc.platform import metrics

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

# Application name -> notification id of the last event appended: what read models must reach.
Positions = dict[str, int]


class Appended(dict[str, int]):
    """Positions that also know the stored topics of the events appended (application -> topics).

    A command waits only for the read models that handle one of these topics (readmodels/waiting.py);
    plain `Positions` (topics unknown) wait for every read model of their applications.
    """

    def __init__(self, positions: dict[str, int], topics: dict[str, frozenset[str]]) -> None:
        super().__init__(positions)
        self.topics = topics


def appended(app_name: str, recordings: Iterable[Recording[UUID]]) -> Appended:
    """Where `recordings` of one application landed, and their topics."""
    landed = list(recordings)
    return Appended(
        {app_name: max(r.notification.id for r in landed)},
        {app_name: frozenset(r.notification.topic for r in landed)},
    )


def stored_so_far(app: Application[UUID]) -> Positions:
    """Where `app`'s log ends now: what to wait for before answering with a state this command did
    not change, which another writer may have stored a moment ago (not yet projected)."""
    return {app.name: app.recorder.max_notification_id() or 0}


ATTEMPTS = 12  # a write clashes once per writer that wins before it: a dozen at once on one object still land
FIRST_PAUSE, LAST_PAUSE = 0.002, 0.1  # seconds: the longest random wait before a retry, doubling from the first


def save(app: Application[UUID], *aggregates: Aggregate) -> Positions:
    """Append every pending event of `aggregates` in one transaction.

    Raises eventsourcing's IntegrityError when another writer got there first. An
    `Idempotency-Key`'s request first records what it is about to append (commands/intents.py).
    """
    announce(app.name, aggregates)
    try:
        recordings = app.save(*aggregates)
    except IntegrityError:
        metrics.VERSION_CONFLICTS.labels(app.name).inc()
        raise
    if not recordings:
        return {}
    metrics.APPENDS.labels(app.name).inc()
    return appended(app.name, recordings)


def retrying(command: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run a load-decide-save `command`, again against the new state if another writer won the race.

    Each retry first waits a random moment (up to FIRST_PAUSE, doubling to at most LAST_PAUSE):
    writers that clashed together, in other processes, do not all come back together to clash again.
    """
    for attempt in range(attempts - 1):
        try:
            return command()
        except IntegrityError:
            time.sleep(random.uniform(0, min(LAST_PAUSE, FIRST_PAUSE * 2**attempt)))  # noqa: S311 - not a secret
    return command()


@dataclass(frozen=True)
class Changed(Generic[T]):
    """What a change did: the decision's result, the aggregate's version after it, where its events landed."""

    result: T
    version: int
    positions: Positions


@dataclass(frozen=True)
class Preconditions:
    """The client's conditions on an aggregate's version (RFC 9110 §13.1.1-2), as api/versions.py reads them.

    `matching` is `If-Match`: one of these versions must be current (None: any version will do).
    `present` is whether there was an `If-Match` at all (its `*` too): some current version must then
    exist, so creating what is not there fails it (`check_missing`). `If-None-Match` is `absent`
    (`*`: no current version at all will do, so an aggregate that was loaded fails it) or
    `none_matching`, versions none of which may be current.
    """

    matching: frozenset[int] | None = None
    present: bool = False
    absent: bool = False
    none_matching: frozenset[int] = frozenset()

    def check(self, aggregate: Aggregate) -> None:
        """Raise PreconditionFailed (412) unless every condition holds at `aggregate`'s version; `If-Match`
        first (RFC 9110 §13.2.2), so a client whose copy is stale is told so whatever else it asked."""
        version = aggregate.version
        if self.matching is not None and version not in self.matching:
            raise StaleVersion(version)
        if self.absent:
            raise PreconditionFailed(version, "object_exists")
        if version in self.none_matching:
            raise PreconditionFailed(version, "version_unchanged")

    def check_missing(self) -> None:
        """Raise PreconditionFailed (412, no version to name) if the conditions need a current version
        of what is about to be created: an `If-Match`, whatever its tags (RFC 9110 §13.1.1)."""
        if self.present:
            raise PreconditionFailed(None, "object_missing")


UNCONDITIONAL = Preconditions()


def _nothing(_: object) -> tuple[Aggregate, ...]:
    return ()


def change(
    app: Application[UUID],
    load: Callable[[], A],
    decide: Callable[[A], T],
    *,
    preconditions: Preconditions = UNCONDITIONAL,
    also: Callable[[T], Iterable[Aggregate]] = _nothing,
    attempts: int = ATTEMPTS,
) -> Changed[T]:
    """Load an aggregate, let `decide` change it, append what it recorded.

    `load` raises the domain error of a missing aggregate; `preconditions` are the client's
    `If-Match` and `If-None-Match`: one that is false at the current version raises PreconditionFailed
    (412) and decides nothing. `decide` records events on the aggregate or raises a domain error; what
    it returns is the result, and `also(result)` names other aggregates it changed, appended in the
    same transaction.

    When another writer appended first (the store's IntegrityError), all of it runs again on the
    new state: with `If-Match` that is a 412, since the version moved; without it, the decision
    is taken again and either holds (2xx) or now refuses with its own domain error (409 for a
    wrong state, 404 for a deleted object). A clash on every attempt lets the IntegrityError out.
    (Orders go through `GroupCommit.change` instead: decided by the leader of a group of commands.)
    """

    def attempt() -> Changed[T]:
        aggregate = load()
        preconditions.check(aggregate)
        result = decide(aggregate)
        changed: tuple[Aggregate, ...] = (aggregate, *also(result))
        positions = save(app, *changed)
        return Changed(result, aggregate.version, positions)

    return retrying(attempt, attempts)
