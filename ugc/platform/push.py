"""What reaches WebSocket clients once projections stored it, and who carries it there.

Projections produce pushes (`projections/outbox.py`), the API's hub delivers them to sockets
(`api/realtime.py`); this module is the vocabulary both speak, so neither imports the other.
A socket sends each stored row once, in store order: pushes it may have missed, it reads again
from the store (`RESYNC`); a client that reconnects re-reads the REST lists or `?since=`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["notification", "message", "resync"]


@dataclass(frozen=True)
class Push:
    """One row for the sockets listening on `to` ("user:<id>" or "conversation:<id>").

    `row` holds the read model's columns (plain values; datetimes, or their ISO text after a
    trip through Redis); `seq` is its place in the store order of its channel (a notification's
    seq, a message's log position), so a socket that sent up to some `seq` drops older pushes and
    repeats.
    """

    kind: Kind
    to: str
    row: dict[str, Any]
    seq: int = 0


# To every socket: rows may have been stored that no one pushed (their projection went on from
# positions this process did not commit: `Projection.resumed`); each socket reads again what was
# stored after the last row it sent. Ordered with the pushes, as one of them.
RESYNC = Push(kind="resync", to="", row={})


def user_channel(user: int) -> str:
    return f"user:{user}"


def conversation_channel(conversation: int) -> str:
    return f"conversation:{conversation}"


class Publisher(Protocol):
    def publish(self, pushes: Sequence[Push]) -> None:
        """Hand `pushes` on; called from the projection runner's thread, must not block for long."""


class NoPublisher:
    """For processes without sockets to feed (rebuilds, seeding)."""

    def publish(self, pushes: Sequence[Push]) -> None:
        return None
