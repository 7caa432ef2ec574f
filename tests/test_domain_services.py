"""The Service aggregate and its pure rules: given events / when command / then events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application

from ugc.errors import InvalidField, NotAllowed
from ugc.events import user_actor
from ugc.services import OptionDraft, Service, normalise_tags, priced_options, service_id

AT = datetime(2024, 6, 22, 18, 0, tzinfo=UTC)
OWNER = user_actor(11)


def offered(**fields: Any) -> Service:
    values: dict[str, Any] = {
        "number": 7,
        "creator_profile_number": 3,
        "creator_user_number": 11,
        "creator_username": "anna",
        "category_number": 1,
        "title": "Видеообзор",
        "description": "Сниму обзор",
        "base_price": Decimal("1000.00"),
        "delivery_time": 7,
        "options": [{"id": 5, "name": "Срочно", "description": "", "price": Decimal("200.50")}],
        "tags": ["обзор"],
        "allows_modifications": True,
        "modifications_price": Decimal("0.00"),
        "at": AT,
        "actor": OWNER,
    } | fields
    return Service(**values)


def test_tags_are_folded_collapsed_and_kept_once_in_order() -> None:
    assert normalise_tags(["  Видео   Обзор ", "TikTok", "видео обзор", "TIKTOK", "Reels"]) == [
        "видео обзор",
        "tiktok",
        "reels",
    ]


@pytest.mark.parametrize(
    ("tags", "code"),
    [([" "], "blank_tag"), (["т" * 51], "tag_too_long"), ([f"t{i}" for i in range(21)], "too_many_tags")],
)
def test_bad_tags_are_refused(tags: list[str], code: str) -> None:
    with pytest.raises(InvalidField) as refused:
        normalise_tags(tags)
    assert (refused.value.field, refused.value.code) == ("tags", code)


def test_twenty_one_tags_that_fold_to_twenty_are_fine() -> None:
    assert len(normalise_tags([f"t{i}" for i in range(20)] + ["T0"])) == 20


def test_options_keep_their_own_ids_and_new_ones_take_fresh_ids_in_turn() -> None:
    drafts = [
        OptionDraft("Новая", "", Decimal("1")),
        OptionDraft("Старая", "описание", Decimal("2.5"), id=5),
        OptionDraft("Ещё", "", Decimal(0)),
    ]
    assert priced_options(drafts, [5, 6], [40, 41]) == [
        {"id": 40, "name": "Новая", "description": "", "price": Decimal("1.00")},
        {"id": 5, "name": "Старая", "description": "описание", "price": Decimal("2.50")},
        {"id": 41, "name": "Ещё", "description": "", "price": Decimal("0.00")},
    ]


@pytest.mark.parametrize("ids", [[9], [5, 5]])
def test_an_option_id_not_the_services_own_or_given_twice_is_refused(ids: list[int]) -> None:
    drafts = [OptionDraft("o", "", Decimal(1), id=i) for i in ids]
    with pytest.raises(InvalidField) as refused:
        priced_options(drafts, [5], [])
    assert refused.value.field == f"options.{len(ids) - 1}.id"


def test_more_than_twenty_options_are_refused() -> None:
    with pytest.raises(InvalidField):
        priced_options([OptionDraft("o", "", Decimal(1))] * 21, [], range(21))


def test_a_new_service_is_active_and_its_id_derives_from_its_number() -> None:
    service = offered()
    assert service.id == service_id(7) and isinstance(service.id, UUID)
    assert service.is_active and service.option_ids == [5]
    assert [type(e) for e in service.collect_events()] == [Service.Created]


def test_an_edit_records_only_what_changed() -> None:
    service = offered()
    service.collect_events()
    service.update(
        {"title": "Видеообзор", "base_price": Decimal("1200.00"), "number": 99, "is_active": False}, AT, OWNER
    )
    (updated,) = service.collect_events()
    assert isinstance(updated, Service.Updated) and updated.changes == {"base_price": Decimal("1200.00")}
    assert service.number == 7 and service.is_active
    service.update({"title": "Видеообзор"}, AT, OWNER)
    assert service.collect_events() == []


def test_deactivating_twice_records_once() -> None:
    service = offered()
    service.collect_events()
    service.deactivate(AT, OWNER)
    service.deactivate(AT, OWNER)
    assert [type(e) for e in service.collect_events()] == [Service.Deactivated]
    assert not service.is_active


def test_only_the_creator_may_change_it() -> None:
    service = offered()
    service.check_owner(11)
    with pytest.raises(NotAllowed):
        service.check_owner(12)


def test_money_and_options_survive_the_event_store() -> None:
    app: Application[UUID] = Application()
    service = offered()
    service.update({"options": [{"id": 6, "name": "x", "description": "", "price": Decimal("0.10")}]}, AT, OWNER)
    app.save(service)
    loaded: Service = app.repository.get(service.id)
    assert loaded.base_price == Decimal("1000.00") and isinstance(loaded.base_price, Decimal)
    assert loaded.options == [{"id": 6, "name": "x", "description": "", "price": Decimal("0.10")}]
    assert loaded.tags == ["обзор"] and loaded.modifications_price == Decimal("0.00")
