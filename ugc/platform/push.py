"""What reaches WebSocket clients once projections stored it, and who carries it there.

Projections produce pushes (`projections/outbox.py`), the API's hub delivers them to sockets
(`api/realtime.py`); this module is the vocabulary both speak, so neither imports the other.
Delivery is at most once; a client that missed a push re-reads what was stored
(`/ws/notifications/?since=`, the REST lists).
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
    trip through Redis); `seq` orders a user's notifications, so a socket that replayed up to
    some `seq` drops older live pushes.
    """

    kind: Kind
    to: str
    row: dict[str, Any]
    seq: int = 0


# To every socket: notifications may have been stored that no one pushed (their projection went on
# from positions this process did not commit: `Projection.resumed`); each notification socket reads
# again what was stored after the last one it sent. Ordered with the pushes, as one of them.
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
