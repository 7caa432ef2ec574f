"""What a command is about to append, announced before its save, so that an `Idempotency-Key` can
tell afterwards whether the command was applied even if its process died right after the append.

The key row learns where the events landed only after the append's transaction (the API records
the positions then), so a crash, or a terminated database session, between the two would leave a
key that looks as if nothing had been appended, and a retry would run the command twice. Before
each save, the request's announcer (set by the API only for requests with an `Idempotency-Key`;
the others pay nothing) records an `Intent` per aggregate: the application, the aggregate, the
version its first new event will have and that event's timestamp. Whether the command was applied
is then a question for the event store (`applied`): the aggregate holds that very event (same
version, same timestamp). An intent of an attempt that lost a race (another writer took the
version) never matches: the stored event there has another timestamp.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate


@dataclass(frozen=True)
class Intent:
    application: str
    aggregate_id: UUID
    version: int  # of the first event the save appends to the aggregate
    timestamp: datetime  # of that event: tells it from an event another writer put at the version

    def line(self) -> str:
        return f"{self.application}\t{self.aggregate_id}\t{self.version}\t{self.timestamp.isoformat()}\n"

    @classmethod
    def parse(cls, line: str) -> Intent:
        application, aggregate_id, version, timestamp = line.split("\t")
        return cls(application, UUID(aggregate_id), int(version), datetime.fromisoformat(timestamp))


Announce = Callable[[Sequence[Intent]], None]

_announcer: contextvars.ContextVar[Announce | None] = contextvars.ContextVar("commands_announcer", default=None)


def announcing(announce: Announce) -> None:
    """Make `announce` hear, in this context, of every save about to happen (see `announce`)."""
    _announcer.set(announce)


def also_announcing(announce: Announce) -> None:
    """Make `announce` hear, in this context, of every save too, after the announcer already set (an
    upload's quota reservation beside its request's `Idempotency-Key`)."""
    before = _announcer.get()
    if before is None:
        _announcer.set(announce)
        return

    def both(intents: Sequence[Intent]) -> None:
        before(intents)
        announce(intents)

    _announcer.set(both)


def announce(app_name: str, aggregates: Iterable[Aggregate]) -> None:
    """Tell this context's announcer what saving `aggregates` is about to append; nothing without one.

    Called before every save of a command. If it raises, the save must not happen.
    """
    hook = _announcer.get()
    if hook is None:
        return
    intents = [
        Intent(
            app_name,
            aggregate.id,
            aggregate.pending_events[0].originator_version,
            aggregate.pending_events[0].timestamp,
        )
        for aggregate in aggregates
        if aggregate.pending_events
    ]
    if intents:
        hook(intents)


def to_text(intents: Iterable[Intent]) -> str:
    return "".join(intent.line() for intent in intents)


def from_text(text: str) -> list[Intent]:
    return [Intent.parse(line) for line in text.splitlines() if line]


def applied(apps: Callable[[str], Application[UUID]], intents: Iterable[Intent]) -> bool:
    """Whether any of `intents` is in its event store: the save that announced it went through
    (a command's events of one application are appended in one transaction)."""
    for intent in intents:
        app = apps(intent.application)
        v = intent.version
        stored = app.recorder.select_events(intent.aggregate_id, gt=v - 1, lte=v)
        if stored and getattr(app.mapper.to_domain_event(stored[0]), "timestamp", None) == intent.timestamp:
            return True
    return False
