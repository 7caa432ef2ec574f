"""Replays read-model projections from position 0 into a scratch set, batch by batch, up to given
positions and never past them.

The live runner (projections/runner.py) follows the head; a replay stops exactly where it is told
to: a rebuild's switch at the positions the live tables stand at, a compare at the positions of its
snapshot. It applies what the live runner applies, the same handlers in the same order, and passes
over the same events (parked or skipped ones, read from the live `parked_events` through the
scratch set's fall-through). Nothing is pushed: the projections given must be instances made
without a publisher, not the ones a live runner uses (a projection keeps batch state).

Each batch of the log is read and decoded in a thread while the batch before it is applied and
committed (`Reader`): the database's work on one batch overlaps with reading the next.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from projections.base import Projection, end_batch
from projections.scratch import ScratchSet
from readmodels import parked
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores

# Events per batch (and transaction). A replay's batch costs a fixed number of statements and a
# commit (projections/orders.py): by 500, those were a third of a rebuild's time.
BATCH_SIZE = 5000
# (projection, application) -> position
Positions = dict[tuple[str, str], int]
Advanced = Callable[[int], object]  # told how many events each batch read


@dataclass(frozen=True)
class NotReplayed:
    """What a replay could not apply: one event (`event`: it failed to decode, or its handler
    raised), or, where no one event is to blame (the batch's end or its commit failed), the batch
    of `application`'s events after position `after`."""

    projection: str
    application: str
    error: Exception
    event: Notification | None
    after: int

    @property
    def reason(self) -> str:
        """The error, on one line."""
        return " ".join(f"{type(self.error).__name__}: {self.error}".split())

    def describe(self) -> str:
        if self.event is not None:
            what = f"cannot replay this event ({self.event.topic}): {self.reason}; passed over"
            return f"the {self.projection} read model {what}"
        return (
            f"the {self.projection} read model's replay failed in a batch of {self.application} after position "
            f"{self.after}: {self.reason}; its replay stopped there"
        )


Failed = Callable[[NotReplayed], object]


class Replay:
    """Where each projection's replay into `scratch` stands on each log it follows (0 at first)."""

    def __init__(
        self,
        scratch: ScratchSet,
        stores: EventStores,
        projections: Sequence[Projection],
        *,
        batch_size: int = BATCH_SIZE,
        advanced: Advanced | None = None,
        failed: Failed | None = None,
    ) -> None:
        """With `failed` (a compare), what the replay cannot apply is told to it instead of raised:
        the event is passed over, as the live runner parks one, and the batch applied again without
        it; a batch with no event to blame stops its projection's replay (`stopped`). Without it (a
        rebuild), the error is raised."""
        if not_read_models := [p.name for p in projections if not p.read_model]:
            raise ValueError(f"side-effect projections are never replayed: {', '.join(not_read_models)}")
        self.scratch = scratch
        self.stores = stores
        self.projections = list(projections)
        self.batch_size = batch_size
        self.advanced = advanced
        self.failed = failed
        self.reached: Positions = {(p.name, app): 0 for p in projections for app in p.applications}
        self.stopped: set[str] = set()  # projections whose replay stopped at a batch (see `failed`)
        self._passed_over: dict[tuple[str, str], set[int]] = {}  # the events `failed` was told of
        self._applying: Notification | None = None  # the event whose decoding or handler is running

    def run_to(self, targets: Mapping[tuple[str, str], int], cur: Cursor | None = None) -> int:
        """Apply every event up to `targets`; how many were read. Each batch commits in a transaction
        of its own, or, given `cur` (a switch's transaction), all of them commit with the caller's."""
        read = 0
        for projection in self.projections:
            for application in projection.applications:
                key = (projection.name, application)
                if self.reached[key] >= targets[key] or projection.name in self.stopped:
                    continue
                with self._reader(projection, application, targets[key]) as reader:
                    while self.reached[key] < targets[key] and projection.name not in self.stopped:
                        batch, events = reader.next()
                        self._apply(cur, projection, application, batch, events, reader.stop)
                        read += len(batch)
        return read

    def _apply(
        self,
        cur: Cursor | None,
        projection: Projection,
        application: str,
        batch: Sequence[Notification],
        events: Sequence[Decoded],
        stop: int,
    ) -> None:
        """Apply one batch and move the replay's position past it (see `__init__` for `failed`)."""
        key = (projection.name, application)
        while True:
            try:
                with self._transaction(cur) as own:
                    reached = self._batch(own, projection, application, batch, events, stop)
                break
            except Exception as error:
                if self.failed is None or cur is not None:
                    raise
                event, self._applying = self._applying, None
                self.failed(NotReplayed(projection.name, application, error, event, self.reached[key]))
                if event is None:
                    self.stopped.add(projection.name)
                    return
                self._passed_over.setdefault(key, set()).add(event.id)  # and the batch again without it
        self.reached[key] = reached  # once committed (or in the caller's transaction)
        if cur is None:
            projection.committed()
        self._advanced(len(batch))

    @contextmanager
    def _transaction(self, cur: Cursor | None) -> Iterator[Cursor]:
        if cur is not None:
            yield cur
            return
        with self.scratch.transaction(write=True, pipelined=True) as own:
            yield own

    def _reader(self, projection: Projection, application: str, stop: int) -> Reader:
        start = self.reached[(projection.name, application)]
        return Reader(self.stores[application], projection.topics(), start, stop, self.batch_size)

    def _advanced(self, seen: int) -> None:
        if self.advanced is not None and seen:
            self.advanced(seen)

    def _batch(
        self,
        cur: Cursor,
        projection: Projection,
        application: str,
        batch: Sequence[Notification],
        events: Sequence[Decoded],
        stop: int,
    ) -> int:
        """Apply a batch the reader read (the events after the replay's position up to `stop`): the
        position reached."""
        key = (projection.name, application)
        handlers = projection.topics()
        try:
            passed_over = parked.passed_over(cur, application, [projection.name], self.reached[key])[projection.name]
            passed_over |= self._passed_over.get(key, set())
            for notification, event in zip(batch, events, strict=True):
                if event is None or notification.id in passed_over:
                    continue
                # Blamed if it fails (a handler's SQL error in a pipelined batch may surface only at a
                # later handler's read, which is then the one blamed, as with the live runner's parking).
                self._applying = notification
                if isinstance(event, Exception):
                    raise event
                projection.position = notification.id
                handlers[notification.topic](cur, event)
            self._applying = None
            end_batch(cur, [projection])
        except BaseException:
            projection.aborted()
            raise
        # Positions are notification ids, which may have gaps: a short batch means none is left up to `stop`.
        return batch[-1].id if len(batch) == self.batch_size else stop


# What the reader made of each event of a batch: the event, None when the projection does not
# handle its topic, or the error decoding it (raised only if the event is to be applied).
Decoded = Any


class Reader:
    """One log's batches after `start` up to `stop`, each read and decoded by a thread of its own
    while the batch before it is applied. A context manager: leaving it waits for that thread."""

    def __init__(self, app: Application[Any], topics: Collection[str], start: int, stop: int, size: int) -> None:
        self.app, self.topics, self.stop, self.size = app, topics, stop, size
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-reader")
        self._coming: Future[tuple[list[Notification], list[Decoded]]] | None = self._thread.submit(self._read, start)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)

    def next(self) -> tuple[list[Notification], list[Decoded]]:
        """The next batch and its decoded events; reading the one after it begins at once."""
        assert self._coming is not None, "read past the reader's stop"
        batch, events = self._coming.result()
        self._coming = self._thread.submit(self._read, batch[-1].id) if len(batch) == self.size else None
        return batch, events

    def _read(self, start: int) -> tuple[list[Notification], list[Decoded]]:
        batch = list(
            self.app.recorder.select_notifications(
                start=start, limit=self.size, stop=self.stop, inclusive_of_start=False
            )
        )
        return batch, [self._decoded(notification) for notification in batch]

    def _decoded(self, notification: Notification) -> Decoded:
        if notification.topic not in self.topics:
            return None
        try:
            return self.app.mapper.to_domain_event(notification)
        except Exception as error:  # the event may be one to pass over: raised only if applied
            return error
