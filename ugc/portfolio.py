"""A creator's portfolio: items with a cover image, each with an ordered set of images.

Images are bytes in the media store; an aggregate keeps only the media key and the content type
sniffed from the bytes. Deleting an item ends its images too: an image is alive only while its
item is, so commands on an image load both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ugc.errors import NotFound
from ugc.events import Caused, apply_changes, changed_fields, stored_as, upcast_cause
from ugc.ids import aggregate_id


def portfolio_item_id(number: int) -> UUID:
    return aggregate_id("portfolio_item", number)


def portfolio_image_id(number: int) -> UUID:
    return aggregate_id("portfolio_image", number)


class _Piece:
    """What items and images share: fields edited in place, bytes replaced with their type, a deletion.

    Each aggregate keeps its own events (their stored names differ); this holds the decisions.
    """

    FIELDS: ClassVar[tuple[str, ...]]
    FILE: ClassVar[tuple[str, str]]  # the fields of its bytes: (media key, content type)
    NOT_FOUND: ClassVar[str]
    creator_profile: int
    deleted: bool

    def check_present(self) -> None:
        if self.deleted:
            raise NotFound(self.NOT_FOUND)

    def update(
        self, changes: Mapping[str, Any], at: datetime, actor: str, *, file: tuple[str, str] | None = None
    ) -> None:
        """Record the fields that differ; new bytes (`file`: key, content type) always come with their type."""
        self.check_present()
        changed = changed_fields(self, changes, self.FIELDS)
        if file is not None and file[0] != getattr(self, self.FILE[0]):
            changed |= dict(zip(self.FILE, file, strict=True))
        if changed:
            self._updated(changed, at, actor)

    def delete(self, at: datetime, actor: str) -> None:
        self.check_present()
        self._deleted(at, actor)

    if TYPE_CHECKING:  # each subclass records these as its own events (its `@event` methods)

        def _updated(self, changes: dict[str, Any], at: datetime, actor: str) -> None: ...

        def _deleted(self, at: datetime, actor: str) -> None: ...


@stored_as
class PortfolioItem(_Piece, Aggregate):
    FIELDS = ("title", "description")
    FILE = ("cover_key", "cover_content_type")
    NOT_FOUND = "portfolio_item_not_found"

    @dataclass(frozen=True)
    class Created(Caused, Aggregate.Created):
        TOPIC = "ugc.PortfolioItem.Created"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        creator_profile: int
        title: str
        description: str
        cover_key: str
        cover_content_type: str
        at: datetime

    @dataclass(frozen=True)
    class Updated(Caused, Aggregate.Event):
        TOPIC = "ugc.PortfolioItem.Updated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class Deleted(Caused, Aggregate.Event):
        TOPIC = "ugc.PortfolioItem.Deleted"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        at: datetime

    @dataclass(frozen=True)
    class ImageAttached(Caused, Aggregate.Event):
        TOPIC = "ugc.PortfolioItem.ImageAttached"
        class_version = 1
        image: int
        at: datetime

    @staticmethod
    def create_id(number: int, **_: Any) -> UUID:
        return portfolio_item_id(number)

    def attach_image(self, image: int, at: datetime, actor: str) -> None:
        """Image `image` joins the item. Recorded on the item as well, in the image's append, so that
        a deletion of the item racing it clashes on the item's version: one of the two is decided
        again after the other, and no image is ever added to a deleted item."""
        self.check_present()
        self._image_attached(image, at, actor)

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
        actor: str,
    ) -> None:
        self.number = number
        self.creator_profile = creator_profile
        self.title = title
        self.description = description
        self.cover_key = cover_key
        self.cover_content_type = cover_content_type
        self.created_at = at
        self.updated_at = at
        self.deleted = False

    @event(Updated)
    def _updated(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        apply_changes(self, changes)
        self.updated_at = at

    @event(Deleted)
    def _deleted(self, at: datetime, actor: str) -> None:
        self.deleted = True

    @event(ImageAttached)
    def _image_attached(self, image: int, at: datetime, actor: str) -> None:
        pass  # the item's version moves: what a racing deletion clashes on

    def as_row(self) -> dict[str, Any]:
        """The item in the read model's shape but for its images (aggregates of their own), for answers
        rendered from what a command appended."""
        return {
            "id": self.number,
            "version": self.version,
            "creator_profile_id": self.creator_profile,
            "title": self.title,
            "description": self.description,
            "cover_key": self.cover_key,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@stored_as
class PortfolioImage(_Piece, Aggregate):
    FIELDS = ("caption", "order")
    FILE = ("image_key", "content_type")
    NOT_FOUND = "portfolio_image_not_found"

    @dataclass(frozen=True)
    class Added(Caused, Aggregate.Created):
        TOPIC = "ugc.PortfolioImage.Added"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        number: int
        portfolio_item: int
        creator_profile: int
        image_key: str
        content_type: str
        caption: str
        order: int
        at: datetime

    @dataclass(frozen=True)
    class Updated(Caused, Aggregate.Event):
        TOPIC = "ugc.PortfolioImage.Updated"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
        changes: dict[str, Any]
        at: datetime

    @dataclass(frozen=True)
    class Removed(Caused, Aggregate.Event):
        TOPIC = "ugc.PortfolioImage.Removed"
        class_version = 2
        upcast_v1_v2 = staticmethod(upcast_cause)
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
        actor: str,
    ) -> None:
        self.number = number
        self.portfolio_item = portfolio_item
        self.creator_profile = creator_profile
        self.image_key = image_key
        self.content_type = content_type
        self.caption = caption
        self.order = order
        self.deleted = False

    @event(Updated)
    def _updated(self, changes: dict[str, Any], at: datetime, actor: str) -> None:
        apply_changes(self, changes)

    @event(Removed)
    def _deleted(self, at: datetime, actor: str) -> None:
        self.deleted = True

    def as_row(self) -> dict[str, Any]:
        """The image in the read model's shape, for answers rendered from what a command appended."""
        return {
            "id": self.number,
            "version": self.version,
            "portfolio_item_id": self.portfolio_item,
            "image_key": self.image_key,
            "caption": self.caption,
            "sort_order": self.order,
        }
