"""Replays read-model projections from position 0 into a scratch set, batch by batch, up to given
positions and never past them.

The live runner (projections/runner.py) follows the head; a replay stops exactly where it is told
to: a rebuild's switch at the positions the live tables stand at, a compare at the positions of its
snapshot. It applies what the live runner applies, the same handlers in the same order, and passes
over the same events (parked or skipped ones, read from the live `parked_events` through the
scratch set's fall-through). Nothing is pushed: the projections given must be instances made
without a publisher, not the ones a live runner uses (a projection keeps batch state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from projections.base import Projection
from projections.scratch import ScratchSet
from readmodels import parked
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores

BATCH_SIZE = 500
# (projection, application) -> position
Positions = dict[tuple[str, str], int]
Advanced = Callable[[int], object]  # told how many events each batch read


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
    ) -> None:
        if not_read_models := [p.name for p in projections if not p.read_model]:
            raise ValueError(f"side-effect projections are never replayed: {', '.join(not_read_models)}")
        self.scratch = scratch
        self.stores = stores
        self.projections = list(projections)
        self.batch_size = batch_size
        self.advanced = advanced
        self.reached: Positions = {(p.name, app): 0 for p in projections for app in p.applications}

    def run_to(self, targets: Mapping[tuple[str, str], int]) -> int:
        """Apply every event up to `targets` (each batch in a transaction of its own); how many were read."""
        read = 0
        for projection in self.projections:
            for application in projection.applications:
                key = (projection.name, application)
                while self.reached[key] < targets[key]:
                    with self.scratch.transaction(write=True, pipelined=True) as cur:
                        seen, reached = self._batch(cur, projection, application, targets[key])
                    self.reached[key] = reached
                    projection.committed()
                    self._advanced(seen)
                    read += seen
        return read

    def run_to_in(self, cur: Cursor, targets: Mapping[tuple[str, str], int]) -> int:
        """`run_to` inside the caller's transaction (a switch's): all of it commits with the caller's."""
        read = 0
        for projection in self.projections:
            for application in projection.applications:
                key = (projection.name, application)
                while self.reached[key] < targets[key]:
                    seen, self.reached[key] = self._batch(cur, projection, application, targets[key])
                    self._advanced(seen)
                    read += seen
        return read

    def _advanced(self, seen: int) -> None:
        if self.advanced is not None and seen:
            self.advanced(seen)

    def _batch(self, cur: Cursor, projection: Projection, application: str, stop: int) -> tuple[int, int]:
        """Apply the events after the replay's position up to `stop`, at most a batch of them: how
        many were read, and the position reached."""
        start = self.reached[(projection.name, application)]
        app = self.stores[application]
        handlers = projection.topics()
        try:
            passed_over = parked.passed_over(cur, application, [projection.name], start)[projection.name]
            batch = app.recorder.select_notifications(
                start=start, limit=self.batch_size, stop=stop, inclusive_of_start=False
            )
            for notification in batch:
                handler = handlers.get(notification.topic)
                if handler is None or notification.id in passed_over:
                    continue
                projection.position = notification.id
                handler(cur, app.mapper.to_domain_event(notification))
            projection.before_commit(cur)
        except BaseException:
            projection.aborted()
            raise
        # Positions are notification ids, which may have gaps: a short batch means none is left up to `stop`.
        return len(batch), batch[-1].id if len(batch) == self.batch_size else stop
