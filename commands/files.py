"""Uploaded files: record an upload whose bytes are already stored; let the owner remove it from view."""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError

from commands.saving import Positions, change, save
from ugc.clock import Clock
from ugc.errors import NotFound
from ugc.events import user_actor
from ugc.files import StoredFile
from ugc.ids import aggregate_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores


class FileCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock) -> None:
        self.app = stores.files
        self.db = db
        self.clock = clock

    def upload(
        self, owner_id: int, *, key: str, name: str, size: int, content_type: str, sha256: str
    ) -> tuple[int, Positions]:
        """Record a file whose bytes the media store holds under `key`; returns the file's id."""
        number = self.db.next_number("file")
        stored = StoredFile(
            number=number,
            owner_user_number=owner_id,
            key=key,
            name=name,
            size=size,
            content_type=content_type,
            sha256=sha256,
            at=self.clock.now(),
            actor=user_actor(owner_id),
        )
        return number, save(self.app, stored)

    def remove(self, owner_id: int, file_id: int) -> Positions:
        """Take the file off its owner's list; its bytes stay for the orders it was delivered in."""

        def load() -> StoredFile:
            stored = self._file(file_id)
            if stored is None:
                raise NotFound("file_not_found")
            return stored

        return change(self.app, load, lambda stored: stored.remove_by_owner(owner_id, self.clock.now())).positions

    def _file(self, file_id: int) -> StoredFile | None:
        try:
            stored: StoredFile = self.app.repository.get(aggregate_id("file", file_id))
        except AggregateNotFoundError:
            return None
        return stored
