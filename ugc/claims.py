"""Claims make a value unique on the write side.

A claim's id is derived from the normalised value, so a second claim on the same value collides
with the first on the event store's own (originator_id, version) key: no read table is consulted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.events import stored_as
from ugc.ids import claim_id


@stored_as
class Claim(Aggregate):
    @dataclass(frozen=True)
    class Made(Aggregate.Created):
        TOPIC = "ugc.Claim.Made"
        kind: str
        value: str
        owner_number: int
        at: datetime

    @staticmethod
    def create_id(kind: str, value: str, owner_number: int, at: datetime) -> UUID:
        return claim_id(kind, value)

    @event(Made)
    def __init__(self, kind: str, value: str, owner_number: int, at: datetime) -> None:
        self.kind = kind
        self.value = value
        self.owner_number = owner_number
