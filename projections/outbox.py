"""The pushes of the batch a projection is applying, sent only once the batch committed.

A projection adds pushes while it applies a batch and flushes them from `Projection.committed`,
so a client never hears of a row it cannot read yet; `aborted` forgets them.
"""

from __future__ import annotations

import logging

from ugc.platform.push import NoPublisher, Publisher, Push

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, publisher: Publisher | None) -> None:
        self.publisher = publisher or NoPublisher()
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
