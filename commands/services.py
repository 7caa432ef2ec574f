"""Services: a creator offers, edits and deactivates them; an erased creator's are withdrawn.

Every decision is taken from aggregates: the category from the catalog's log, the creator's
profile and name from the accounts log, ownership from the service itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from commands.creator_access import Listed, withdrawn_if_erased
from commands.saving import UNCONDITIONAL, Positions, Preconditions, change, save, stored_so_far
from ugc.accounts import User
from ugc.clock import Clock
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.errors import InvalidField, NotAllowed, NotFound
from ugc.events import user_actor
from ugc.ids import aggregate_id
from ugc.platform.database import Database
from ugc.platform.personal_data import PersonErased
from ugc.platform.store import EventStores
from ugc.services import OptionDraft, Service, money, normalise_tags, priced_options, service_id


@dataclass(frozen=True)
class OfferService:
    title: str
    description: str
    category_id: int
    base_price: Decimal
    delivery_time: int
    options: Sequence[OptionDraft] = ()
    tags: Sequence[str] = ()
    allows_modifications: bool = True
    modifications_price: Decimal = Decimal(0)


# The ids of a creator profile's active services (or portfolio items), as their read model shows them
# once it has applied these positions (`ugc users erase` reads them there: no log lists one creator's).
class ServiceCommands:
    def __init__(self, stores: EventStores, db: Database, clock: Clock) -> None:
        self.catalog = stores.catalog
        self.accounts = stores.accounts
        self.db = db
        self.clock = clock

    def offer(self, user_id: int, command: OfferService, *, number: int | None = None) -> tuple[int, Positions]:
        """Create a service for the user's creator profile; its public id and where its event landed.

        `number`: a public id drawn beforehand (`ugc seed --demo`, which notes it first so that a
        run that stopped half-way finds what it made); a fresh one otherwise."""
        tags = normalise_tags(command.tags)
        priced_options(command.options, (), range(len(command.options)))  # refuse bad options before drawing ids
        self._check_category(command.category_id)
        profile = self._creator_profile(user_id)
        user: User = self.accounts.repository.get(aggregate_id("user", user_id))
        if user.erased:  # moments ago, with a token whose standing a server still keeps: nothing new of theirs
            raise PersonErased(f"user {user_id} was erased")
        number = number or self.db.next_number("service")
        option_ids = self.db.next_numbers("service_option", len(command.options))
        service = Service(
            number=number,
            creator_profile_number=profile.number,
            creator_user_number=user_id,
            creator_username=user.username,
            category_number=command.category_id,
            title=command.title,
            description=command.description,
            base_price=money(command.base_price),
            delivery_time=command.delivery_time,
            options=priced_options(command.options, (), option_ids),
            tags=tags,
            allows_modifications=command.allows_modifications,
            modifications_price=money(command.modifications_price),
            at=self.clock.now(),
            actor=user_actor(user_id),
        )
        positions = save(self.catalog, service)
        withdrawn_if_erased(self.accounts, self.catalog, user_id, lambda: self.deactivate(user_id, number))
        return number, positions

    def edit(
        self, user_id: int, number: int, changes: dict[str, Any], *, preconditions: Preconditions = UNCONDITIONAL
    ) -> Positions:
        """Apply a partial edit; API field names (`category_id`, `options` as drafts) are accepted."""
        changes = dict(changes)
        if "tags" in changes:
            changes["tags"] = normalise_tags(changes["tags"])
        if "category_id" in changes:
            changes["category_number"] = changes.pop("category_id")
            self._check_category(changes["category_number"])
        for name in ("base_price", "modifications_price"):
            if name in changes:
                changes[name] = money(changes[name])
        drafts: list[OptionDraft] | None = changes.pop("options", None)
        if drafts is not None:
            priced_options(drafts, [d.id for d in drafts if d.id is not None], range(len(drafts)))

        def decide(service: Service) -> None:
            edited = changes
            if drafts is not None:
                fresh = self.db.next_numbers("service_option", sum(d.id is None for d in drafts))
                edited = changes | {"options": priced_options(drafts, service.option_ids, fresh)}
            service.update(edited, self.clock.now(), user_actor(user_id))

        return self._change(user_id, number, decide, preconditions)

    def deactivate(self, user_id: int, number: int, *, preconditions: Preconditions = UNCONDITIONAL) -> Positions:
        actor = user_actor(user_id)
        return self._change(user_id, number, lambda service: service.deactivate(self.clock.now(), actor), preconditions)

    def withdraw_all(self, creator_user_id: int, actor: str, listed: Listed) -> list[int]:
        """Deactivate every active service of a creator whose account was erased, as their own DELETE
        would, with `actor` (the operator) recorded; the ids withdrawn.

        The listing names them once it has applied the catalog log as it stands: the creator is
        erased by then, so no offer of theirs comes later (`offer` refuses it).
        """
        try:
            profile = self._creator_profile(creator_user_id)
        except NotAllowed:
            return []  # not a creator: no services, and nothing to wait for
        withdrawn = []
        for number in listed(profile.number, stored_so_far(self.catalog)):
            load = functools.partial(self._service, number)
            if change(self.catalog, load, lambda service: service.deactivate(self.clock.now(), actor)).positions:
                withdrawn.append(number)
        return withdrawn

    def _change(
        self, user_id: int, number: int, decide: Callable[[Service], None], preconditions: Preconditions
    ) -> Positions:
        """Change the caller's own service: 404, then 403 for another's, then 412 for a false precondition."""

        def owned() -> Service:
            service = self._service(number)
            service.check_owner(user_id)
            return service

        return change(self.catalog, owned, decide, preconditions=preconditions).positions

    def _service(self, number: int) -> Service:
        try:
            service: Service = self.catalog.repository.get(service_id(number))
        except AggregateNotFoundError:
            raise NotFound() from None
        return service

    def _check_category(self, number: int) -> None:
        try:
            self.catalog.repository.get(aggregate_id("category", number))
        except AggregateNotFoundError:
            raise InvalidField("category_id", "unknown_category") from None

    def _creator_profile(self, user_id: int) -> CreatorProfile:
        """Only creators offer services: a user without a creator profile gets a 403."""
        try:
            profile: CreatorProfile = self.accounts.repository.get(creator_profile_id(user_id))
        except AggregateNotFoundError:
            raise NotAllowed() from None
        return profile
