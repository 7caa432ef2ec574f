"""Claims make a value unique on the write side.

A claim's id is derived from the normalised value, so a second claim on the same value collides
with the first on the event store's own (originator_id, version) key: no read table is consulted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import Caused, stored_as, upcast_cause
from ugc.ids import claim_id


@stored_as
class Claim(Aggregate):
    @dataclass(frozen=True)
    class Made(Caused, Aggregate.Created):
        TOPIC = "ugc.Claim.Made"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        kind: str
        value: str
        owner_number: int
        at: datetime

    @dataclass(frozen=True)
    class Taken(Caused, Aggregate.Event):
        TOPIC = "ugc.Claim.Taken"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        owner_number: int
        at: datetime

    @staticmethod
    def create_id(kind: str, value: str, owner_number: int, at: datetime) -> UUID:
        return claim_id(kind, value)

    @event(Made)
    def __init__(self, kind: str, value: str, owner_number: int, at: datetime, actor: str) -> None:
        self.kind = kind
        self.value = value
        self.owner_number = owner_number

    def take(self, owner_number: int, at: datetime, actor: str) -> None:
        """(Re)assign a claim whose value its owner gave up (a renamed skill).

        Always appends, even to the same owner: claimants racing for one value then collide on
        this claim's version instead of both winning.
        """
        self._taken(owner_number, at, actor)

    @event(Taken)
    def _taken(self, owner_number: int, at: datetime, actor: str) -> None:
        self.owner_number = owner_number
