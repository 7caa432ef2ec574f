"""The pushes of the batch a projection is applying, sent only once the batch committed.

A projection adds pushes while it applies a batch and flushes them from `Projection.committed`,
so a client never hears of a row it cannot read yet; `aborted` forgets them. When such a
projection goes on from positions this process did not commit (`Projection.resumed`), rows stored
before them may never have been pushed (their holder died, froze or lost Redis with its pushes still
queued, or a rebuild applied them), or be pushed late, after newer ones: `resync` has every
socket read again what was stored after the last row it sent.
"""

from __future__ import annotations

import logging

from projections.base import Projection
from ugc.platform.push import RESYNC, NoPublisher, Publisher, Push

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, publisher: Publisher | None) -> None:
        self.publisher = publisher or NoPublisher()
        # False where nothing would carry a push anywhere (rebuilds, a `ugc project` without Redis):
        # a projection may then skip building them.
        self.heard = not isinstance(self.publisher, NoPublisher)
        self._pending: list[Push] = []

    def add(self, push: Push) -> None:
        self._pending.append(push)

    def flush(self) -> None:
        pushes, self._pending = self._pending, []
        if not pushes:
            return
        try:
            self.publisher.publish(pushes)
        except Exception:
            # The rows are stored: a lost push costs a client a `since=` replay, never data.
            log.exception("pushing %d stored rows failed", len(pushes))

    def discard(self) -> None:
        self._pending = []

    def resync(self) -> None:
        """Have every socket read again what was stored after what it sent (`RESYNC`), before any
        push this process publishes from now on."""
        try:
            self.publisher.publish([RESYNC])
        except Exception:
            log.exception("asking the sockets to read again what was stored failed")


class PushingProjection(Projection):
    """A read model whose new rows are pushed to sockets, once stored, through its outbox."""

    def __init__(self, publisher: Publisher | None = None) -> None:
        self.outbox = Outbox(publisher)

    def committed(self) -> None:
        self.outbox.flush()

    def resumed(self) -> None:
        self.outbox.resync()

    def aborted(self) -> None:
        self.outbox.discard()
