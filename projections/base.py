"""What a projection is: a name, the events it handles, and how to handle each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from eventsourcing.utils import get_topic

from projections.held import Writes, write_together
from ugc.platform.dialect import Cursor, Dialect

# A read model's handler is called with the batch's cursor and the event; a side effect's with
# only the event (see ProjectionRunner).
Handler = Callable[..., object]


class SideEffectDeferred(Exception):
    """A side effect failed for a while, not for good (its server down, busy, slow to answer): the
    runner tries it again, with a growing pause, for as long as that lasts, and never parks it."""


class SideEffectPostponed(SideEffectDeferred):
    """A side effect that cannot happen now for a reason of its own (its recipient greylisted), while
    the others could: the runner sets it aside, tries it again later on its own, and goes on with the
    rest (`readmodels/parked.py`, POSTPONED). Where the event is not known, deferred like the others."""


class SideEffectRefused(Exception):
    """A side effect failed for good (a mail server refused the address): an expected failure, which
    the runner logs in one line and parks after its attempts like any other."""


class Projection(ABC):
    """Handlers keyed by event class, applied in log order.

    `read_model` projections keep tables that queries read: commands wait for them
    (read-your-writes) and their handler and tracking commit in one transaction (exactly-once).
    Others (`read_model = False`) cause side effects outside the database, at least once.
    """

    name: ClassVar[str]
    applications: ClassVar[tuple[str, ...]]
    read_model: ClassVar[bool] = True
    tables: ClassVar[tuple[str, ...]] = ()
    # Bumped when a change of the code changes what it writes: a runner that starts with another
    # version stored than declared rebuilds the projection blue/green (projections/bluegreen.py).
    version: ClassVar[int] = 1
    # True when its handlers find rows only by primary or unique keys: a rebuild then makes its
    # tables' other indexes once after the replay (projections/scratch.py), not row by row.
    indexed_after_replay: ClassVar[bool] = False
    # The log position (notification id) of the event a read-model handler is applying; the
    # runner sets it before each call, for rows that must be keyed by where their event sits.
    position: int = 0
    # A side effect's last check before its point of no return (the runner sets it while the
    # projection runs under a lease): raises when this process may no longer act.
    go_ahead: Callable[[], None] = staticmethod(lambda: None)

    @abstractmethod
    def handlers(self) -> Mapping[type, Handler]:
        """Event class -> the function that applies it."""

    def held_writes(self, dialect: Dialect) -> Sequence[Writes]:
        """What the handlers held back to write at the end of the batch, in phases: no write of a
        phase reads what another of that phase writes (each may read what earlier phases wrote),
        and each reads and writes only this projection's tables. `end_batch` writes the phases of
        every projection of a batch together, then calls `before_commit`."""
        return ()

    def before_commit(self, cur: Cursor) -> None:
        """Called at the end of a batch, once its held writes are written (`end_batch`) and before
        its position moves: write what the handlers held back otherwise, forget what was written."""
        return None

    def committed(self) -> None:
        """Called after a batch's transaction committed: push what it stored (stored before pushed)."""
        return None

    def aborted(self) -> None:
        """Called when a batch rolled back: forget what it would have pushed."""
        return None

    def resumed(self) -> None:
        """Called when this process goes on from positions it did not commit itself (it started, took
        the lease over, or a rebuild moved them on): what was stored before them may not have been pushed."""
        return None

    def topics(self) -> dict[str, Handler]:
        return {get_topic(event_class): handler for event_class, handler in self.handlers().items()}


def end_batch(cur: Cursor, projections: Sequence[Projection]) -> None:
    """End a batch of `projections`: the writes they held back, phase by phase, each phase of all of
    them in one statement on PostgreSQL (`write_together`: a batch that mixes a lifecycle's steps
    costs few more statements than one of placings, issue 15), then each one's `before_commit`."""
    phases = [projection.held_writes(cur.dialect) for projection in projections]
    for index in range(max(map(len, phases), default=0)):
        write_together(cur, [write for held in phases if index < len(held) for write in held[index]])
    for projection in projections:
        projection.before_commit(cur)
