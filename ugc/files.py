"""Uploaded files: who owns one, where its bytes are kept, whether the owner still lists it.

The bytes live in the media store under a random `key`; the display `name` is the uploaded name
already sanitised by the API. Removal by the owner only hides the file from the owner: the record
and the bytes stay, because an order the file was delivered in keeps it as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import NotFound
from ugc.events import Caused, stored_as, upcast_cause, user_actor
from ugc.ids import aggregate_id


@stored_as
class StoredFile(Aggregate):
    @dataclass(frozen=True)
    class Uploaded(Caused, Aggregate.Created):
        TOPIC = "ugc.StoredFile.Uploaded"
        class_version = 2
        number: int
        owner_user_number: int
        key: str
        name: str
        size: int
        content_type: str
        sha256: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            upcast_cause(state, user_actor(state["owner_user_number"]))  # only the owner uploads

    @dataclass(frozen=True)
    class RemovedByOwner(Caused, Aggregate.Event):
        TOPIC = "ugc.StoredFile.RemovedByOwner"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        at: datetime

    @staticmethod
    def create_id(
        number: int,
        owner_user_number: int,
        key: str,
        name: str,
        size: int,
        content_type: str,
        sha256: str,
        at: datetime,
    ) -> UUID:
        return aggregate_id("file", number)

    @event(Uploaded)
    def __init__(
        self,
        number: int,
        owner_user_number: int,
        key: str,
        name: str,
        size: int,
        content_type: str,
        sha256: str,
        at: datetime,
        actor: str,
    ) -> None:
        self.number = number
        self.owner_user_number = owner_user_number
        self.key = key
        self.name = name
        self.size = size
        self.content_type = content_type
        self.sha256 = sha256
        self.removed = False

    def visible_to_owner(self, user_number: int) -> bool:
        return self.owner_user_number == user_number and not self.removed

    def remove_by_owner(self, user_number: int, at: datetime) -> None:
        """Hide the file from its owner; to anyone else (or once removed) it does not exist."""
        if not self.visible_to_owner(user_number):
            raise NotFound("file_not_found")
        self._removed_by_owner(at, user_actor(user_number))

    @event(RemovedByOwner)
    def _removed_by_owner(self, at: datetime, actor: str) -> None:
        self.removed = True
