"""A context's log as an audit record reads it: each event decoded, beside how it was recorded.

The chain's read API (`EventStores.recorded_events`) hands out the stored events with their
position, recording time and hashes; the record shows both what the event says today (decoded by
the current code, through the upcasters) and the stored bytes the hashes cover. Reading the two
from one query keeps them the same events, even while the order is being written to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ugc.platform.chain import RecordedEvent
from ugc.platform.store import EventStores


class UnreadableEvent(Exception):
    """A stored event that today's code cannot decode: written or changed outside the application (the
    store only ever holds what it decoded once). Raised naming the event, so that the record's reader
    (an auditor's page, the CLI) is told which one and where, not a bare internal error."""

    def __init__(self, recorded: RecordedEvent, reason: str) -> None:
        super().__init__(
            f"the stored event of version {recorded.version} ({recorded.context} position {recorded.position}) "
            f"does not decode ({reason})"
        )
        self.recorded = recorded


class OutOfPlaceEvent(UnreadableEvent):
    """A stored event that decodes but cannot be applied after the ones before it in its stream: a
    version missing before it (an event deleted) or moved, so the aggregate as of it cannot be rebuilt.
    Named as an undecodable event is, and for the same reason: the log was changed outside the
    application, which only ever appends each stream's next version."""

    def __init__(self, recorded: RecordedEvent, reason: str) -> None:
        Exception.__init__(
            self,
            f"the stored event of version {recorded.version} ({recorded.context} position {recorded.position}) "
            f"does not follow the events before it ({reason})",
        )
        self.recorded = recorded


@dataclass(frozen=True)
class Logged:
    event: Any  # the domain event, in its current shape
    recorded: RecordedEvent  # as stored: position, topic, state bytes, recording time, hashes


class RecordedLog:
    """Context `context`'s log of `stores`, one stream at a time."""

    def __init__(self, stores: EventStores, context: str) -> None:
        self._stores = stores
        self._context = context

    def recorded(self, stream: UUID) -> list[Logged]:
        """The stream's events, oldest first."""
        mapper = self._stores[self._context].mapper
        logged = []
        for r in self._stores.recorded_events(self._context, stream):
            try:
                event = mapper.to_domain_event(StoredEvent(r.stream, r.version, r.topic, r.state))
            except Exception as error:  # whatever fails to decode (JSON, topic, fields, upcaster) is this
                raise UnreadableEvent(r, f"{type(error).__name__}: {error}") from error
            logged.append(Logged(event, r))
        return logged
