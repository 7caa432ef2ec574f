"""The one way to change an aggregate (`commands.saving.change`), against the real event store.

Another writer is made to append between this command's load and its save, so the save clashes
on the store's own key; what happens next is the runner's rule: the decision is taken again on
the new state, where it holds or refuses with its domain error, and a stale If-Match is a 412.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from commands.orders import OrderCommands, Saved
from commands.portfolio import PortfolioCommands, StoredImage
from commands.saving import ATTEMPTS, Preconditions, change
from commands.standing import Standings
from tests.backends import DATA_KEY
from tests.test_domain_orders import BUYER, CREATOR, NOW, placed
from ugc.accounts import User
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.errors import InvalidField, StaleVersion, WrongState
from ugc.events import user_actor
from ugc.orders import Order, order_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.portfolio import PortfolioItem
from ugc.wiring import migrate

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def stores(settings: Settings) -> Iterator[EventStores]:
    db = Database(settings.database_url)
    migrate(db)
    opened = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        yield opened
    finally:
        opened.close()
        db.close()


def a_profile(stores: EventStores) -> int:
    """A saved user and their creator profile at version 1; the user's number."""
    user = 1000 + next(_numbers)
    # A portfolio item's creation reads the account too (an erased creator adds none).
    stores.accounts.save(User(user, f"creator{user}", f"creator{user}@example.com", "", "", "", NOW, user_actor(user)))
    profile = CreatorProfile(
        number=user,
        user_number=user,
        specialization="Видео",
        experience="",
        portfolio_link="",
        social_links={},
        at=NOW,
        actor=user_actor(user),
    )
    stores.accounts.save(profile)
    return user


def a_pending_order(stores: EventStores) -> int:
    number = next(_numbers)
    stores.orders.save(placed(number=number))
    return number


def test_a_change_is_decided_loaded_and_saved_once_without_a_clash(stores: EventStores) -> None:
    user = a_profile(stores)
    changed = change(
        stores.accounts,
        lambda: stores.accounts.repository.get(creator_profile_id(user)),
        lambda profile: profile.update({"experience": "5 лет"}, NOW, user_actor(profile.user_number)),
    )
    assert changed.version == 2 and changed.positions == {"accounts": changed.positions["accounts"]}
    assert stores.accounts.repository.get(creator_profile_id(user)).experience == "5 лет"


def test_a_clash_is_decided_again_on_the_new_state(stores: EventStores) -> None:
    user = a_profile(stores)
    decided_on: list[int] = []

    def decide(profile: CreatorProfile) -> str:
        decided_on.append(profile.version)
        if len(decided_on) == 1:  # another writer appends between our load and our save
            other: CreatorProfile = stores.accounts.repository.get(profile.id)
            other.update({"experience": "чужая правка"}, NOW, user_actor(other.user_number))
            stores.accounts.save(other)
        profile.update({"specialization": "Фото"}, NOW, user_actor(profile.user_number))
        return profile.specialization

    changed = change(stores.accounts, lambda: stores.accounts.repository.get(creator_profile_id(user)), decide)
    assert decided_on == [1, 2]
    assert (changed.result, changed.version) == ("Фото", 3)
    now: CreatorProfile = stores.accounts.repository.get(creator_profile_id(user))
    assert (now.specialization, now.experience, now.version) == ("Фото", "чужая правка", 3)


def test_a_clash_whose_new_state_refuses_answers_the_domain_error(stores: EventStores) -> None:
    number = a_pending_order(stores)
    attempts = 0

    def accept(order: Order) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # the buyer cancels while the creator's accept is being decided
            other: Order = stores.orders.repository.get(order.id)
            other.cancel(BUYER, "Передумал", NOW)
            stores.orders.save(other)
        order.accept(CREATOR, NOW)

    with pytest.raises(WrongState) as refused:
        change(stores.orders, lambda: stores.orders.repository.get(order_id(number)), accept)
    assert refused.value.current == "cancelled" and attempts == 2
    assert stores.orders.repository.get(order_id(number)).version == 2  # placed, cancelled: nothing of ours


def test_an_expected_version_that_is_not_current_is_stale_and_decides_nothing(stores: EventStores) -> None:
    user = a_profile(stores)
    decided: list[CreatorProfile] = []
    with pytest.raises(StaleVersion) as stale:
        change(
            stores.accounts,
            lambda: stores.accounts.repository.get(creator_profile_id(user)),
            decided.append,
            preconditions=Preconditions(matching=frozenset({2})),
        )
    assert stale.value.current == 1 and decided == []
    changed = change(
        stores.accounts,
        lambda: stores.accounts.repository.get(creator_profile_id(user)),
        lambda profile: profile.update({"experience": "1 год"}, NOW, user_actor(profile.user_number)),
        preconditions=Preconditions(matching=frozenset({1})),
    )
    assert changed.version == 2


def test_with_an_expected_version_a_clash_is_stale_rather_than_decided_again(stores: EventStores) -> None:
    user = a_profile(stores)
    decided_on: list[int] = []

    def decide(profile: CreatorProfile) -> None:
        decided_on.append(profile.version)
        other: CreatorProfile = stores.accounts.repository.get(profile.id)
        other.update({"experience": f"чужая правка {len(decided_on)}"}, NOW, user_actor(other.user_number))
        stores.accounts.save(other)
        profile.update({"specialization": "Фото"}, NOW, user_actor(profile.user_number))

    with pytest.raises(StaleVersion) as stale:
        change(
            stores.accounts,
            lambda: stores.accounts.repository.get(creator_profile_id(user)),
            decide,
            preconditions=Preconditions(matching=frozenset({1})),
        )
    assert stale.value.current == 2 and decided_on == [1]


def test_a_clash_on_every_attempt_lets_the_integrity_error_out(stores: EventStores) -> None:
    user = a_profile(stores)
    decided = 0

    def decide(profile: CreatorProfile) -> None:
        nonlocal decided
        decided += 1
        other: CreatorProfile = stores.accounts.repository.get(profile.id)
        other.update({"experience": f"чужая правка {decided}"}, NOW, user_actor(other.user_number))
        stores.accounts.save(other)
        profile.update({"specialization": "Фото"}, NOW, user_actor(profile.user_number))

    with pytest.raises(IntegrityError):
        change(stores.accounts, lambda: stores.accounts.repository.get(creator_profile_id(user)), decide)
    assert decided == ATTEMPTS


def test_writers_that_clash_at_once_all_land_without_if_match(settings: Settings, stores: EventStores) -> None:
    """Eight edits of one profile, each from a store of its own (as from another process), started
    together: every clash is decided again on the new state, after a random pause, until all land."""
    user = a_profile(stores)
    writers = [EventStores(settings.database_url, data_key=DATA_KEY) for _ in range(8)]
    start = threading.Barrier(len(writers))

    def edit(n: int) -> int:
        own = writers[n]
        start.wait()
        return change(
            own.accounts,
            lambda: own.accounts.repository.get(creator_profile_id(user)),
            lambda profile: profile.update({"experience": f"правка {n}"}, NOW, user_actor(profile.user_number)),
        ).version

    try:
        with ThreadPoolExecutor(len(writers)) as pool:
            versions = list(pool.map(edit, range(len(writers))))
    finally:
        for writer in writers:
            writer.close()
    assert sorted(versions) == list(range(2, 2 + len(writers)))


class RacedPortfolio(PortfolioCommands):
    """Portfolio commands whose first look at an item is raced: another writer deletes it right after."""

    def __init__(self, stores: EventStores, settings: Settings) -> None:
        super().__init__(stores, Database(settings.database_url), MovableClock(NOW))
        self.raced = False

    def _item(self, number: int) -> PortfolioItem:
        item = super()._item(number)
        if not self.raced:
            self.raced = True
            theirs: PortfolioItem = self.app.repository.get(item.id)
            theirs.delete(NOW, "user:other")
            self.app.save(theirs)
        return item


def test_an_image_added_as_its_item_is_deleted_is_refused_and_not_stored(
    settings: Settings, stores: EventStores
) -> None:
    """The image's append carries the item's record of it: the deletion that came between clashes
    with it, the decision is taken again on the deleted item, and the image is refused (422) as for
    an item deleted before, with nothing appended."""
    user = a_profile(stores)
    commands = RacedPortfolio(stores, settings)
    item = commands.create_item(
        user, title="Ролик", description="", cover=StoredImage("cover", "image/png")
    ).piece.number
    head = stores.catalog.recorder.max_notification_id() or 0
    with pytest.raises(InvalidField) as refused:
        commands.add_image(user, portfolio_item=item, image=StoredImage("image", "image/png"), caption="", order=0)
    assert refused.value.field == "portfolio_item"
    appended = stores.catalog.recorder.select_notifications(start=head + 1, limit=100)
    assert [n.topic for n in appended] == ["ugc.PortfolioItem.Deleted"]  # the other writer's alone


class RacedOrders(OrderCommands):
    """Order commands whose first decision is raced: another writer's command lands between the
    group's load of the order and its save."""

    def __init__(self, stores: EventStores, settings: Settings, other: str) -> None:
        clock = MovableClock(NOW)
        super().__init__(
            stores, Database(settings.database_url), clock, Standings(stores, clock), auto_complete_after=timedelta(3)
        )
        self.other = other
        self.raced = False

    def _change(
        self,
        order: int,
        command: str,
        actor: int,
        preconditions: Preconditions,
        decide: Callable[[Order], None],
    ) -> Saved:
        def raced(loaded: Order) -> None:
            if not self.raced:
                self.raced = True
                other: Order = self.app.repository.get(loaded.id)
                if self.other == "accept":
                    other.accept(CREATOR, NOW)
                else:
                    other.update(BUYER, {"requirements": "Другие требования"}, NOW)
                self.app.save(other)
            decide(loaded)

        return super()._change(order, command, actor, preconditions, raced)

    def close(self) -> None:
        self.db.close()


@pytest.mark.parametrize(
    ("other", "outcome"), [("accept", "refused: in_progress"), ("update", "cancelled")], ids=["moved", "kept"]
)
def test_an_order_command_is_decided_again_only_on_the_status_its_caller_saw(
    stores: EventStores, settings: Settings, other: str, outcome: str
) -> None:
    """A cancel raced by an accept is refused, although cancelling in progress is allowed (one winner
    of two transitions); a cancel raced by an edit that kept the order pending is decided again."""
    number = a_pending_order(stores)
    orders = RacedOrders(stores, settings, other)
    result: str
    try:
        orders.cancel(number, BUYER, "Передумал")
        result = stores.orders.repository.get(order_id(number)).status
    except WrongState as refused:
        result = f"refused: {refused.current}"
    finally:
        orders.close()
    assert result == outcome


class HeldOrders(OrderCommands):
    """Order commands whose group saves wait, once told to, until released: a second command on an
    order then arrives while the first one is being saved, as two requests racing in one process."""

    def __init__(self, stores: EventStores, settings: Settings) -> None:
        clock = MovableClock(NOW)
        super().__init__(
            stores, Database(settings.database_url), clock, Standings(stores, clock), auto_complete_after=timedelta(3)
        )
        self.saving, self.release = threading.Event(), threading.Event()
        save = self.app.save

        def held_save(*aggregates: Any, **kwargs: Any) -> Any:
            self.saving.set()
            assert self.release.wait(10)
            return save(*aggregates, **kwargs)

        self.app.save = held_save  # type: ignore[method-assign]

    def close(self) -> None:
        del self.app.save  # the class's own again: the store outlives this test
        self.db.close()


def queued_behind(orders: HeldOrders, count: int) -> bool:
    """Whether `count` commands wait in the group commit's queue (its internals: nothing else tells)."""
    for _ in range(500):
        if len(orders._groups._queue) == count:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("accept", "cancel", ("refused: in_progress", "in_progress")),
        ("accept", "accept", ("refused: in_progress", "in_progress")),
        ("update", "cancel", ("done", "cancelled")),
    ],
    ids=["moved", "twice", "kept"],
)
def test_in_one_process_a_command_arriving_while_another_is_saved_was_meant_for_the_status_before(
    stores: EventStores, settings: Settings, first: str, second: str, outcome: tuple[str, str]
) -> None:
    """Accept and cancel on a pending order, the cancel arriving while the accept is being saved:
    the cancel loses with 409, although cancelling in progress is allowed. Within a process no save
    clashes (the group commit decides the second on the first one's outcome), so the order commands
    remember the status each command's caller saw. After an edit that kept the status, it is decided."""
    number = a_pending_order(stores)
    orders = HeldOrders(stores, settings)
    commands: dict[str, Callable[[], object]] = {
        "cancel": lambda: orders.cancel(number, BUYER, "Передумал"),
        "update": lambda: orders.update(number, BUYER, {"requirements": "Другие требования"}),
        "accept": lambda: orders.accept(number, CREATOR),
    }

    def outcome_of(command: Callable[[], object]) -> str:
        try:
            command()
        except WrongState as refused:
            return f"refused: {refused.current}"
        return "done"

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            under_way = pool.submit(outcome_of, commands[first])
            assert orders.saving.wait(10)
            raced = pool.submit(outcome_of, commands[second])
            assert queued_behind(orders, 1)
            orders.release.set()
            assert under_way.result(10) == "done"
            result = raced.result(10)
        assert (result, stores.orders.repository.get(order_id(number)).status) == outcome
        if first == "accept":  # arriving once the accept is saved, a cancel is a new request on an order in progress
            assert outcome_of(commands["cancel"]) == "done"
    finally:
        orders.release.set()
        orders.close()
