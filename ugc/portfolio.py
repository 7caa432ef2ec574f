"""A creator's portfolio: items with a cover image, each with an ordered set of images.

Images are bytes in the media store; an aggregate keeps only the media key and the content type
sniffed from the bytes. Deleting an item ends its images too: an image is alive only while its
item is, so commands on an image load both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import NotFound
from ugc.events import apply_changes, changed_fields, stored_as
from ugc.ids import aggregate_id

ITEM_FIELDS = ("title", "description", "cover_key", "cover_content_type")
IMAGE_FIELDS = ("caption", "order", "image_key", "content_type")


def portfolio_item_id(number: int) -> UUID:
    return aggregate_id("portfolio_item", number)


def portfolio_image_id(number: int) -> UUID:
    return aggregate_id("portfolio_image", number)


def changed_with_file(
    current: object, changes: Mapping[str, Any], fields: Collection[str], key: str, content_type: str
) -> dict[str, Any]:
    """The changes to record; new bytes (a new `key`) always come with their type, even an unchanged one."""
    changed = changed_fields(current, changes, fields)
    if key in changed:
        changed[content_type] = changes[content_type]
    return changed


@stored_as
class PortfolioItem(Aggregate):
    @dataclass(frozen=True)
    class Created(Aggregate.Created):
        TOPIC = "ugc.PortfolioItem.Created"
        number: int
        creator_profile: int
        title: str
        description: str
        cover_key: str
        cover_content_type: str
        at: datetime

    @dataclass(frozen=True)
    class Updated(Aggregate.Event):
        TOPIC = "ugc.PortfolioItem.Updated"
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class Deleted(Aggregate.Event):
        TOPIC = "ugc.PortfolioItem.Deleted"
        at: datetime

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return portfolio_item_id(number)

    @event(Created)
    def __init__(
        self,
        number: int,
        creator_profile: int,
        title: str,
        description: str,
        cover_key: str,
        cover_content_type: str,
        at: datetime,
    ) -> None:
        self.number = number
        self.creator_profile = creator_profile
        self.title = title
        self.description = description
        self.cover_key = cover_key
        self.cover_content_type = cover_content_type
        self.deleted = False

    def check_present(self) -> None:
        if self.deleted:
            raise NotFound("portfolio_item_not_found")

    def update(self, changes: dict[str, Any], at: datetime) -> None:
        self.check_present()
        changed = changed_with_file(self, changes, ITEM_FIELDS, "cover_key", "cover_content_type")
        if changed:
            self._updated(changed, at)

    @event(Updated)
    def _updated(self, changes: dict[str, Any], at: datetime) -> None:
        apply_changes(self, changes)

    def delete(self, at: datetime) -> None:
        self.check_present()
        self._deleted(at)

    @event(Deleted)
    def _deleted(self, at: datetime) -> None:
        self.deleted = True


@stored_as
class PortfolioImage(Aggregate):
    @dataclass(frozen=True)
    class Added(Aggregate.Created):
        TOPIC = "ugc.PortfolioImage.Added"
        number: int
        portfolio_item: int
        creator_profile: int
        image_key: str
        content_type: str
        caption: str
        order: int
        at: datetime

    @dataclass(frozen=True)
    class Updated(Aggregate.Event):
        TOPIC = "ugc.PortfolioImage.Updated"
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class Removed(Aggregate.Event):
        TOPIC = "ugc.PortfolioImage.Removed"
        at: datetime

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return portfolio_image_id(number)

    @event(Added)
    def __init__(
        self,
        number: int,
        portfolio_item: int,
        creator_profile: int,
        image_key: str,
        content_type: str,
        caption: str,
        order: int,
        at: datetime,
    ) -> None:
        self.number = number
        self.portfolio_item = portfolio_item
        self.creator_profile = creator_profile
        self.image_key = image_key
        self.content_type = content_type
        self.caption = caption
        self.order = order
        self.removed = False

    def check_present(self) -> None:
        if self.removed:
            raise NotFound("portfolio_image_not_found")

    def update(self, changes: dict[str, Any], at: datetime) -> None:
        self.check_present()
        changed = changed_with_file(self, changes, IMAGE_FIELDS, "image_key", "content_type")
        if changed:
            self._updated(changed, at)

    @event(Updated)
    def _updated(self, changes: dict[str, Any], at: datetime) -> None:
        apply_changes(self, changes)

    def remove(self, at: datetime) -> None:
        self.check_present()
        self._removed(at)

    @event(Removed)
    def _removed(self, at: datetime) -> None:
        self.removed = True
