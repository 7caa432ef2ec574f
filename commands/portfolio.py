"""A creator's portfolio items and their images; only the owning creator writes them, and an erased
creator's are withdrawn."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from eventsourcing.application import AggregateNotFoundError

from commands.creator_access import Listed, check_owner, require_live_creator, withdraw_listed, withdrawn_if_erased
from commands.saving import UNCONDITIONAL, Positions, Preconditions, change, save
from ugc.clock import Clock
from ugc.errors import InvalidField, NotFound
from ugc.events import user_actor
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.portfolio import PortfolioImage, PortfolioItem, portfolio_image_id, portfolio_item_id

Kind = Literal["item", "image"]


@dataclass(frozen=True)
class Saved:
    """An item or image as a command appended it: what the read model shows once it reaches
    `positions`, so the answer is rendered from it (as orders' are) rather than read back, which
    found nothing when a deletion appended just after was projected first."""

    piece: PortfolioItem | PortfolioImage
    positions: Positions


@dataclass(frozen=True)
class StoredImage:
    """Bytes already in the media store: their key and the image type sniffed from them."""

    key: str
    content_type: str


class PortfolioCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock) -> None:
        self.app = stores.catalog
        self.accounts = stores.accounts
        self.db = db
        self.clock = clock

    def create_item(self, user_id: int, *, title: str, description: str, cover: StoredImage) -> Saved:
        profile = require_live_creator(self.accounts, user_id)
        number = self.db.next_number("portfolio_item")
        item = PortfolioItem(
            number=number,
            creator_profile=profile,
            title=title,
            description=description,
            cover_key=cover.key,
            cover_content_type=cover.content_type,
            at=self.clock.now(),
            actor=user_actor(user_id),
        )
        saved = Saved(item, save(self.app, item))
        withdrawn_if_erased(self.accounts, self.app, user_id, lambda: self.delete("item", user_id, number))
        return saved

    def add_image(self, user_id: int, *, portfolio_item: int, image: StoredImage, caption: str, order: int) -> Saved:
        """Add an image to one of the caller's items: an unknown (or deleted) item is a bad field (422),
        another's is 403. Appended with the item's own record of it: an item deleted meanwhile
        clashes, and the image is refused as for an item deleted before."""
        number = self.db.next_number("portfolio_image")
        actor = user_actor(user_id)

        def item() -> PortfolioItem:
            try:
                found = self._item(portfolio_item)
            except NotFound:
                raise InvalidField("portfolio_item", "unknown_portfolio_item") from None
            check_owner(self.accounts, user_id, found.creator_profile)
            return found

        def attach(to: PortfolioItem) -> PortfolioImage:
            now = self.clock.now()
            to.attach_image(number, now, actor)
            return PortfolioImage(
                number=number,
                portfolio_item=to.number,
                creator_profile=to.creator_profile,
                image_key=image.key,
                content_type=image.content_type,
                caption=caption,
                order=order,
                at=now,
                actor=actor,
            )

        added = change(self.app, item, attach, also=lambda added: (added,))
        return Saved(added.result, added.positions)

    def withdraw_all(self, creator_user_id: int, actor: str, listed: Listed) -> list[int]:
        """Delete every portfolio item of a creator whose account was erased (their images go with
        it), with `actor` (the operator) recorded; the ids deleted (`withdraw_listed`)."""

        def delete(number: int) -> None:
            change(self.app, functools.partial(self._item, number), lambda item: item.delete(self.clock.now(), actor))

        return withdraw_listed(self.accounts, self.app, creator_user_id, listed, delete)

    # Items and images alike: only the creator who owns one changes it.

    def update(
        self,
        kind: Kind,
        user_id: int,
        number: int,
        changes: dict[str, Any],
        file: StoredImage | None = None,
        *,
        preconditions: Preconditions = UNCONDITIONAL,
    ) -> Saved:
        """Change the item's or image's fields, and its bytes when a `file` comes with their type."""
        new_file = None if file is None else (file.key, file.content_type)
        return self._change(
            kind,
            user_id,
            number,
            lambda piece: piece.update(changes, self.clock.now(), user_actor(user_id), file=new_file),
            preconditions,
        )

    def delete(
        self, kind: Kind, user_id: int, number: int, *, preconditions: Preconditions = UNCONDITIONAL
    ) -> Positions:
        actor = user_actor(user_id)
        return self._change(
            kind, user_id, number, lambda piece: piece.delete(self.clock.now(), actor), preconditions
        ).positions

    def _change(
        self,
        kind: Kind,
        user_id: int,
        number: int,
        decide: Callable[[PortfolioItem | PortfolioImage], None],
        preconditions: Preconditions,
    ) -> Saved:
        """404 for a missing or deleted one, then 403 for another's, then 412 for a false precondition."""

        def owned() -> PortfolioItem | PortfolioImage:
            piece = self._item(number) if kind == "item" else self._image(number)
            check_owner(self.accounts, user_id, piece.creator_profile)
            return piece

        def decided(piece: PortfolioItem | PortfolioImage) -> PortfolioItem | PortfolioImage:
            decide(piece)
            return piece

        changed = change(self.app, owned, decided, preconditions=preconditions)
        return Saved(changed.result, changed.positions)

    def _item(self, number: int) -> PortfolioItem:
        try:
            item: PortfolioItem = self.app.repository.get(portfolio_item_id(number))
        except AggregateNotFoundError:
            raise NotFound("portfolio_item_not_found") from None
        item.check_present()
        return item

    def _image(self, number: int) -> PortfolioImage:
        """A live image: neither it nor its item has been deleted."""
        try:
            image: PortfolioImage = self.app.repository.get(portfolio_image_id(number))
        except AggregateNotFoundError:
            raise NotFound("portfolio_image_not_found") from None
        image.check_present()
        try:
            self._item(image.portfolio_item)
        except NotFound:
            raise NotFound("portfolio_image_not_found") from None
        return image
