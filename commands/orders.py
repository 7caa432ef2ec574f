"""Order commands: one method per row of the lifecycle table, plus placing and auto-completion.

Every change is decided on the order as stored and appends one event, in a group of commands
(`GroupCommit`). Without `If-Match` a version clash is retried against the new state (ending in 2xx
or 409); with it, a stale version is a 412, as is a current one that `If-None-Match` names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError

from commands.group_commit import GroupCommit, Preparing
from commands.read_only import ReadOnlyAggregates, ReadOnlyView
from commands.saving import UNCONDITIONAL, Positions, Preconditions, retrying
from commands.standing import Standings
from commands.status_seen import Arrival, SeenStatuses
from ugc.accounts import User
from ugc.clock import Clock
from ugc.errors import InvalidField, NotAllowed, NotFound, WrongState
from ugc.files import StoredFile
from ugc.ids import aggregate_id
from ugc.orders import SYSTEM, Order, order_id
from ugc.platform.database import Database
from ugc.platform.dialect import Row
from ugc.platform.personal_data import PersonErased
from ugc.platform.store import Accounts, Catalog, EventStores, Files
from ugc.services import Service

R = TypeVar("R")


@dataclass(frozen=True)
class Saved:
    """An order as a command appended it: what the read model shows once it reaches `positions`, so
    the answer is rendered from it, without reading the read model back."""

    order: Order
    positions: Positions


Placed = Saved


@dataclass(frozen=True)
class Delivered:
    """A delivery as its WorkDelivered event recorded it: the row the deliveries read model will hold."""

    id: int
    order_id: int
    message: str
    file_ids: list[int]
    created_at: datetime

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "message": self.message,
            "file_ids": self.file_ids,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Reviewed:
    """A review as its Reviewed event recorded it, with the order's fields the reviews read model copies."""

    id: int
    order: Order
    rating: int
    content: str

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order.number,
            "rating": self.rating,
            "content": self.content,
            "reviewer_id": self.order.buyer,
            "reviewer_username": self.order.buyer_username,
            "service_title": self.order.service_title,
            "created_at": self.order.updated_at,
        }


class OrderCommands:
    def __init__(
        self, stores: EventStores, db: Database, clock: Clock, standings: Standings, *, auto_complete_after: timedelta
    ) -> None:
        """`standings`: the process's own (a server's forgets an erased person's the moment it hears)."""
        self.stores = stores
        self.standings = standings
        self.app = stores.orders
        self.db = db
        self.clock = clock
        self.auto_complete_after = auto_complete_after
        self._read_only = ReadOnlyAggregates(stores, db)
        # Placing and every command on an existing order, appended in the same groups.
        self._groups: GroupCommit[tuple[ReadOnlyView, int], Order] = GroupCommit(self.app, self._prepare)
        self._seen = SeenStatuses(clock.now)

    def arriving(self, order: int) -> AbstractContextManager[Arrival]:
        """A command on `order` arrived and is under way for the block: enter it where the request
        arrives, before any thread or queue, so the command is meant for the status seen then."""
        return self._seen.arriving(order)

    def place(
        self,
        buyer_id: int,
        service_id: int,
        requirements: str,
        delivery_date: date,
        option_ids: list[int],
        *,
        number: int | None = None,
    ) -> Placed:
        """Fix the service's terms (title, prices, chosen options) into a new order.

        Decided in a group with the orders placed at the same time (`GroupCommit`): one query
        reads the order numbers and the heads of the logs the buyer and the service live in.
        `number`: an order number drawn beforehand (`ugc seed --demo`), used instead of the group's.
        """
        at = self.clock.now()
        if delivery_date < at.date():
            raise InvalidField("delivery_date", "past_delivery_date")
        # A service's creator never changes: knowing it from any service kept, a placing reads the
        # creator's standing in its own thread, not in the group's leader, which the whole group waits for.
        kept: Service | None = self._read_only.kept(Catalog.name, aggregate_id("service", service_id))
        if kept is not None:
            self._gone(kept.creator_user_number)  # kept for the leader to look up (unless the creator is gone)

        def decide(prepared: tuple[ReadOnlyView, int]) -> Order:
            now, drawn = prepared
            try:
                buyer: User = now.get(Accounts.name, aggregate_id("user", buyer_id))
            except AggregateNotFoundError:
                raise NotFound("user_not_found") from None
            if buyer.erased:  # moments ago, with a token a server still trusted: no order of theirs to cancel later
                raise PersonErased(f"user {buyer_id} was erased")
            try:
                service: Service = now.get(Catalog.name, aggregate_id("service", service_id))
            except AggregateNotFoundError:
                raise InvalidField("service_id", "unknown_service") from None
            if not service.is_active:
                raise InvalidField("service_id", "service_inactive")
            creator: User = now.get(Accounts.name, aggregate_id("user", service.creator_user_number))
            if creator.erased or self._gone(creator.number):
                # Withdrawn in all but its event: the erasure appends its Service.Deactivated only after
                # User.Erased, and one killed in between left the service active for good; one killed
                # after the keys, before User.Erased, shows only in the creator's standing.
                raise InvalidField("service_id", "service_inactive")
            options_by_id = {int(option["id"]): option for option in service.options}
            if any(option not in options_by_id for option in option_ids):
                raise InvalidField("selected_option_ids", "unknown_option")
            options = [
                {
                    "id": int(o["id"]),
                    "name": o["name"],
                    "description": o.get("description", ""),
                    "price": Decimal(o["price"]),
                }
                for o in (options_by_id[option] for option in dict.fromkeys(option_ids))
            ]
            price = Decimal(service.base_price)
            return Order.place(
                number=number or drawn,
                buyer=buyer_id,
                buyer_username=buyer.username,
                creator=service.creator_user_number,
                creator_profile=service.creator_profile_number,
                creator_username=service.creator_username,
                service=service_id,
                service_title=service.title,
                price=price,
                options=options,
                total_price=price + sum((o["price"] for o in options), Decimal(0)),
                requirements=requirements,
                delivery_date=delivery_date.isoformat(),
                allows_modifications=bool(service.allows_modifications),
                at=at,
            )

        return Placed(*self._groups.append(decide))

    def _gone(self, user_id: int) -> bool:
        """Whether the user counts as erased, their keys' tombstones included (`commands/erased.py`), as
        their standing says: a dictionary lookup while it is kept, else one load (every 30 s at most,
        in the placing's own thread once the service's creator is known)."""
        return (self.standings.known(user_id) or self.standings.load(user_id)) is None

    def _prepare(self, count: int, numbered: Mapping[str, int]) -> Preparing[tuple[ReadOnlyView, int]]:
        """A group's orders to place (`count`), each with the buyer's and the service's logs as they
        stand and a fresh order number, and the numbers its other commands asked for: one statement,
        which the group's leader reads with its orders' streams (PostgreSQL)."""
        applications = (Accounts.name, Catalog.name) if count else ()
        counts = {"order": count, **numbered} if count else dict(numbered)

        def finish(row: Row | None) -> tuple[list[tuple[ReadOnlyView, int]], dict[str, list[int]]]:
            now, numbers = self._read_only.numbered_now(applications, counts, row)
            return [(now, number) for number in numbers.pop("order", [])], numbers

        return Preparing(self._read_only.numbered_query(applications, counts), finish)

    def accept(self, order: int, actor: int, *, preconditions: Preconditions = UNCONDITIONAL) -> Saved:
        return self._change(order, "accept", actor, preconditions, lambda o: o.accept(actor, self.clock.now()))

    def update(
        self, order: int, actor: int, changes: dict[str, Any], *, preconditions: Preconditions = UNCONDITIONAL
    ) -> Saved:
        if "delivery_date" in changes:
            if changes["delivery_date"] < self.clock.now().date():
                raise InvalidField("delivery_date", "past_delivery_date")
            changes = {**changes, "delivery_date": changes["delivery_date"].isoformat()}
        return self._change(order, "update", actor, preconditions, lambda o: o.update(actor, changes, self.clock.now()))

    def deliver(
        self,
        order: int,
        actor: int,
        message: str,
        file_ids: list[int],
        *,
        preconditions: Preconditions = UNCONDITIONAL,
    ) -> tuple[Delivered, Saved]:
        """Deliver, with files of the actor's own (422 otherwise, once the order is found visible to them)."""
        files = list(dict.fromkeys(file_ids))
        own = self._own_files(actor, files)  # read here, not in the group's leader, which every command waits for

        def decide(o: Order, number: int | None) -> int:
            assert number is not None
            if not own:  # told only to the order's creator (`_change_numbered` checks the party first)
                raise InvalidField("file_ids", "foreign_file")
            o.deliver(actor, number, message, files, self.clock.now())
            return number

        number, saved = self._change_numbered(order, "deliver", actor, preconditions, "delivery", decide)
        return Delivered(number, saved.order.number, message, files, saved.order.updated_at), saved

    def request_revision(
        self, order: int, actor: int, message: str, *, preconditions: Preconditions = UNCONDITIONAL
    ) -> Saved:
        """Send a delivered order back to work; refused (409, the status kept) when its creator was
        erased: nobody would ever deliver it again (the buyer may still approve it)."""

        def decide(o: Order) -> None:
            o.check("request_revision", actor)
            # Read in the group's leader, which every command of the group waits for: only for a
            # revision the order allows, a rare command, and one account, kept while its log stands still.
            creator: User = self._read_only.now((Accounts.name,)).get(Accounts.name, aggregate_id("user", o.creator))
            if creator.erased:
                raise WrongState(o.status, "creator_erased")
            o.request_revision(actor, message, self.clock.now())

        return self._change(order, "request_revision", actor, preconditions, decide)

    def approve(self, order: int, actor: int, *, preconditions: Preconditions = UNCONDITIONAL) -> Saved:
        return self._change(order, "approve", actor, preconditions, lambda o: o.approve(actor, self.clock.now()))

    def cancel(self, order: int, actor: int, reason: str, *, preconditions: Preconditions = UNCONDITIONAL) -> Saved:
        return self._change(order, "cancel", actor, preconditions, lambda o: o.cancel(actor, reason, self.clock.now()))

    def review(
        self, order: int, actor: int, rating: int, content: str, *, preconditions: Preconditions = UNCONDITIONAL
    ) -> tuple[Reviewed, Saved]:
        if not 1 <= rating <= 5:
            raise InvalidField("rating", "rating_out_of_range")

        def decide(o: Order, number: int | None) -> int:
            assert number is not None
            o.review(actor, number, rating, content, self.clock.now())
            return number

        number, saved = self._change_numbered(order, "review", actor, preconditions, "review", decide)
        return Reviewed(number, saved.order, rating, content), saved

    def auto_complete(self, order: int) -> Positions:
        """Complete a delivered order the buyer left unanswered; refused (409) if anything moved it first."""

        def decide(o: Order) -> None:
            assert o.delivered_at is not None
            if self.clock.now() - o.delivered_at < self.auto_complete_after:
                raise NotAllowed("not_due")
            o.auto_complete(self.clock.now())

        return self._change(order, "auto_complete", SYSTEM, UNCONDITIONAL, decide).positions

    def _change(
        self,
        order: int,
        command: str,
        actor: int,
        preconditions: Preconditions,
        decide: Callable[[Order], None],
    ) -> Saved:
        return self._change_numbered(order, command, actor, preconditions, None, lambda o, _: decide(o))[1]

    def _change_numbered(
        self,
        order: int,
        command: str,
        actor: int,
        preconditions: Preconditions,
        kind: str | None,
        decide: Callable[[Order, int | None], R],
    ) -> tuple[R, Saved]:
        """Decide `actor`'s `command` (its rule in ugc.orders `RULES`) on the order as stored now and
        append, in a group with other orders' commands and orders placed meanwhile
        (`GroupCommit.change`: one read, one table lock, one COMMIT for the lot); `decide` gets a fresh
        number of `kind` to record under, if `kind` is given: what it returns, and the order as saved.

        Checked in this order, each before anything the next one would tell: who may see the order
        (404) and who may issue the command (403: `Order.check_party`), then the version, then the
        status. `preconditions` are the client's `If-Match` and `If-None-Match`, decided here, on the
        order as the group's leader loaded it: one that is false is a 412 and decides nothing. An
        order's command is meant for the status its caller saw (`SeenStatuses`): when another command,
        here (the status seen) or in another process (the status's time against this one's arrival),
        moved the order to another status after this one arrived, this one loses with 409 (of two
        racing transitions exactly one wins); when the status is the same (an edit), it is decided on
        the new state.
        """
        with self._seen.under_way(order) as arrival:
            seen = arrival.seen

            def decide_on_the_status_seen(stored: Order, number: int | None) -> R:
                stored.check_party(command, actor)
                preconditions.check(stored)
                if stored.status_since > arrival.at or stored.status != (seen.status or stored.status):
                    raise WrongState(stored.status, "order_wrong_status")
                seen.status = stored.status
                return decide(stored, number)

            def attempt() -> tuple[R, Saved]:
                try:
                    changed, result, positions = self._groups.change_numbered(
                        order_id(order), kind, decide_on_the_status_seen
                    )
                except AggregateNotFoundError:
                    raise NotFound("order_not_found") from None
                return result, Saved(changed, positions)

            result, saved = retrying(attempt)
            self._seen.saved(order, saved.order.status)
            return result, saved

    def _own_files(self, actor: int, file_ids: list[int]) -> bool:
        """Whether every one of `file_ids` is a file of `actor`'s, not removed."""
        if not file_ids:
            return True
        now = self._read_only.now((Files.name,))
        for file_number in file_ids:
            try:
                stored: StoredFile = now.get(Files.name, aggregate_id("file", file_number))
            except AggregateNotFoundError:
                return False
            if stored.owner_user_number != actor or stored.removed:
                return False
        return True
