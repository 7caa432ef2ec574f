"""Services: offering, editing, deactivating, the public listing with its filters, and the legacy shape.

The module shares one database, so every listing test narrows to its own creator (`creator=`) or
to a search word no other test uses.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from api.schemas.services import ServicePatchIn
from projections.bluegreen import rebuild_outdated
from projections.listings import ListingsProjection
from projections.runner import ProjectionRunner
from readmodels import versions
from readmodels.folding import search_words
from readmodels.pages import PageRequest
from readmodels.services import (
    GRAMS_VERSION,
    LISTINGS_VERSION,
    ORDERINGS,
    PROJECTION,
    ListingTotals,
    ServiceFilters,
    count_query,
    list_services,
    matches_first,
    page_query,
    search_grams,
    search_text,
)
from readmodels.waiting import Progress
from tests.backends import DATA_KEY
from tests.conftest import BAD_BODY_IDS, Api, new_client, refused, refused_id
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores
from ugc.wiring import migrate

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FORBIDDEN = {"detail": "У вас недостаточно прав для выполнения данного действия."}
NOT_FOUND = {"detail": "Страница не найдена."}


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    """An hour back, so moving it forward never issues a token dated in the future (PyJWT refuses those)."""
    return MovableClock(datetime.now(UTC) - timedelta(hours=1))


def word() -> str:
    """A search word no other test's services contain."""
    return "слово" + uuid.uuid4().hex[:8]


def creator(api: Api) -> dict[str, Any]:
    """A verified user with a creator profile (`profile_id`)."""
    user = api.verified_user()
    response = api.client.post(
        "/api/v1/users/me/creator-profile/", headers=user["headers"], json={"specialization": "Видеограф"}
    )
    assert response.status_code == 201, response.text
    return user | {"profile_id": response.json()["id"]}


def categories(api: Api) -> list[int]:
    return [c["id"] for c in api.client.get("/api/v1/categories/").json()["results"]]


def offer(api: Api, owner: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {
        "title": "Видеообзор товара",
        "description": "Сниму обзор на ваш товар",
        "category_id": categories(api)[0],
        "base_price": 1000,
        "delivery_time": 7,
    } | fields
    response = api.client.post("/api/v1/services/", headers=owner["headers"], json=body)
    assert response.status_code == 201, response.text
    service: dict[str, Any] = response.json()
    return service


def listing(api: Api, **params: Any) -> dict[str, Any]:
    response = api.client.get("/api/v1/services/", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[int]:
    return [service["id"] for service in page["results"]]


# Creating and reading -------------------------------------------------------------------------


def test_creating_a_service_answers_the_full_v1_shape(api: Api) -> None:
    owner = creator(api)
    category = categories(api)[1]
    response = api.client.post(
        "/api/v1/services/",
        headers=owner["headers"],
        json={
            "title": "  Монтаж видео  ",
            "description": "Смонтирую ролик для соцсетей",
            "category_id": category,
            "base_price": 1500.5,
            "delivery_time": 5,
            "options": [
                {"name": "Срочно", "description": "За 2 дня", "price": 200},
                {"name": "Субтитры", "price": 99.99},
            ],
            "tags": ["  Монтаж  Видео ", "монтаж видео", "TikTok", "tiktok", "Reels"],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    options = body["options"]
    assert body == {
        "id": body["id"],
        "title": "Монтаж видео",
        "description": "Смонтирую ролик для соцсетей",
        "category_id": category,
        "creator": {"id": owner["profile_id"], "user_id": owner["id"], "username": owner["username"], "rating": 0},
        "base_price": 1500.5,
        "delivery_time": 5,
        "options": [
            {"id": options[0]["id"], "name": "Срочно", "description": "За 2 дня", "price": 200},
            {"id": options[1]["id"], "name": "Субтитры", "description": "", "price": 99.99},
        ],
        "tags": ["монтаж видео", "tiktok", "reels"],
        "allows_modifications": True,
        "modifications_price": 0,
        "is_active": True,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert isinstance(body["id"], int) and body["id"] > 0
    assert all(isinstance(o["id"], int) and o["id"] > 0 for o in options) and options[0]["id"] != options[1]["id"]
    assert ISO_UTC.match(body["created_at"])
    assert api.client.get(f"/api/v1/services/{body['id']}/").json() == body
    assert api.client.get(f"/api/v1/services/{body['id']}").json() == body


def test_the_legacy_route_answers_exactly_the_spec_keys_with_decimal_strings(api: Api) -> None:
    owner = creator(api)
    created = offer(api, owner, base_price=1000, delivery_time=7, allows_modifications=False, modifications_price=250.5)
    response = api.client.get(f"/api/services/{created['id']}/")
    assert response.status_code == 200
    assert response.json() == {
        "id": created["id"],
        "creator_profile": owner["profile_id"],
        "creator_username": owner["username"],
        "title": "Видеообзор товара",
        "description": "Сниму обзор на ваш товар",
        "price": "1000.00",
        "estimated_time": "7 дней",
        "allows_modifications": False,
        "modifications_price": "250.50",
        "is_active": True,
        "created_at": created["created_at"],
        "updated_at": created["updated_at"],
    }
    assert created["allows_modifications"] is False and created["modifications_price"] == 250.5


@pytest.mark.parametrize(
    ("days", "text"), [(1, "1 день"), (3, "3 дня"), (11, "11 дней"), (21, "21 день"), (365, "365 дней")]
)
def test_legacy_estimated_time_is_the_delivery_time_in_russian_words(api: Api, days: int, text: str) -> None:
    created = offer(api, creator(api), delivery_time=days)
    assert api.client.get(f"/api/services/{created['id']}/").json()["estimated_time"] == text


@pytest.mark.parametrize(
    ("sent", "shown", "legacy"),
    [
        (19.99, 19.99, "19.99"),
        (12345678.91, 12345678.91, "12345678.91"),
        ("0.10", 0.1, "0.10"),
        (100000000, 100000000, "100000000.00"),
    ],
)
def test_money_keeps_every_digit(api: Api, sent: Any, shown: Any, legacy: str) -> None:
    created = offer(api, creator(api), base_price=sent)
    assert created["base_price"] == shown
    assert api.client.get(f"/api/services/{created['id']}/").json()["price"] == legacy


def test_money_is_parsed_from_the_json_digits_not_through_a_float(api: Api) -> None:
    owner = creator(api)
    # As a float this is 20.0 (two places): only the exact digits show it has fifteen.
    category = categories(api)[0]
    body = (
        f'{{"title": "t", "description": "", "category_id": {category}, '
        '"base_price": 19.999999999999999, "delivery_time": 1}'
    )
    response = api.client.post(
        "/api/v1/services/", headers=owner["headers"] | {"content-type": "application/json"}, content=body
    )
    assert response.status_code == 422
    assert list(response.json()["fields"]) == ["base_price"]


def test_unknown_services_are_404_on_every_route(api: Api) -> None:
    owner = creator(api)
    for path in ("/api/v1/services/987654321/", "/api/services/987654321/", "/api/v1/services/99999999999999999999/"):
        assert api.client.get(path).json() == NOT_FOUND
    assert api.client.patch("/api/v1/services/987654321/", headers=owner["headers"], json={}).status_code == 404
    assert api.client.delete("/api/v1/services/987654321/", headers=owner["headers"]).status_code == 404
    assert api.client.get("/api/v1/services/abc/").status_code == 404


# Who may write -------------------------------------------------------------------------------


def test_writes_need_a_token(api: Api) -> None:
    created = offer(api, creator(api))
    assert api.client.post("/api/v1/services/", json={}).status_code == 401
    assert api.client.patch(f"/api/v1/services/{created['id']}/", json={"title": "x"}).status_code == 401
    assert api.client.delete(f"/api/v1/services/{created['id']}/").status_code == 401


def test_a_user_without_a_creator_profile_cannot_offer_a_service(api: Api) -> None:
    client = api.verified_user()
    body = {"title": "t", "description": "", "category_id": categories(api)[0], "base_price": 1, "delivery_time": 1}
    response = api.client.post("/api/v1/services/", headers=client["headers"], json=body)
    assert response.status_code == 403
    assert response.json() == FORBIDDEN


def test_a_field_error_is_reported_before_the_missing_creator_profile(api: Api) -> None:
    response = api.client.post("/api/v1/services/", headers=api.verified_user()["headers"], json={"title": ""})
    assert response.status_code == 422


def test_only_the_owner_edits_or_deactivates(api: Api) -> None:
    owner, other = creator(api), creator(api)
    created = offer(api, owner)
    path = f"/api/v1/services/{created['id']}/"
    for intruder in (other, api.verified_user()):
        assert api.client.patch(path, headers=intruder["headers"], json={"title": "Чужое"}).json() == FORBIDDEN
        response = api.client.delete(path, headers=intruder["headers"])
        assert response.status_code == 403 and response.json() == FORBIDDEN
    assert api.client.get(path).json() == created


# Validation -----------------------------------------------------------------------------------

VALID = {"title": "Фото", "description": "", "base_price": 100, "delivery_time": 3}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": None}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "т" * 201}, "title"),
        ({"description": "д" * 5001}, "description"),
        ({"base_price": 0}, "base_price"),
        ({"base_price": -5}, "base_price"),
        ({"base_price": 10.001}, "base_price"),
        ({"base_price": "много"}, "base_price"),
        ({"base_price": True}, "base_price"),
        ({"base_price": 100000000.01}, "base_price"),
        ({"base_price": "1e999999999"}, "base_price"),
        ({"base_price": "-1e999999999"}, "base_price"),
        ({"base_price": "1e-999999999"}, "base_price"),
        # Decimal() reads Python's digit grouping; no JSON or query number has it.
        ({"base_price": "1_000"}, "base_price"),
        ({"options": [{"name": "o", "price": "2_0"}]}, "options.0.price"),
        ({"delivery_time": 0}, "delivery_time"),
        ({"delivery_time": 366}, "delivery_time"),
        ({"delivery_time": "7"}, "delivery_time"),
        ({"delivery_time": 1.5}, "delivery_time"),
        ({"category_id": "1"}, "category_id"),
        ({"category_id": 987654}, "category_id"),
        ({"category_id": 0}, "category_id"),
        ({"options": [{"name": "o", "price": 1}] * 21}, "options"),
        ({"options": [{"price": 1}]}, "options.0.name"),
        ({"options": [{"name": "o", "price": -1}]}, "options.0.price"),
        ({"options": [{"name": "o", "price": 1, "id": 5}]}, "options.0.id"),
        ({"options": {"name": "o"}}, "options"),
        ({"tags": ["t"] * 21}, "tags"),
        ({"tags": ["т" * 51]}, "tags.0"),
        ({"tags": ["  "]}, "tags.0"),
        ({"tags": "видео"}, "tags"),
        ({"allows_modifications": "yes"}, "allows_modifications"),
        ({"modifications_price": -1}, "modifications_price"),
    ],
)
def test_creating_with_a_bad_field_is_a_422_naming_it(api: Api, fields: dict[str, Any], field: str) -> None:
    owner = creator(api)
    body = VALID | {"category_id": categories(api)[0]} | fields
    response = api.client.post("/api/v1/services/", headers=owner["headers"], json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "Ошибка валидации данных."
    assert field in response.json()["fields"], response.json()


@pytest.mark.parametrize("bad", BAD_BODY_IDS)
def test_category_and_option_ids_are_whole_positive_json_numbers(api: Api, bad: Any) -> None:
    owner = creator(api)
    category = categories(api)[-1]
    created = api.client.post("/api/v1/services/", headers=owner["headers"], json=VALID | {"category_id": bad})
    assert (created.status_code, created.json()) == (422, refused_id("category_id"))
    service = offer(api, owner)
    path = f"/api/v1/services/{service['id']}/"
    for body, field in [
        ({"category_id": bad}, "category_id"),
        ({"options": [{"id": bad, "name": "o", "price": 1}]}, "options.0.id"),
    ]:
        response = api.client.patch(path, headers=owner["headers"], json=body)
        assert (response.status_code, response.json()) == (422, refused_id(field)), body
    edited = api.client.patch(path, headers=owner["headers"], json={"category_id": category})
    assert edited.status_code == 200 and edited.json()["category_id"] == category, edited.text


def test_a_patch_refuses_nulls_and_bad_values(api: Api) -> None:
    owner = creator(api)
    path = f"/api/v1/services/{offer(api, owner)['id']}/"
    for body, field in [
        ({"title": None}, "title"),
        ({"base_price": 0}, "base_price"),
        ({"category_id": 987654}, "category_id"),
        ({"tags": ["x"] * 21}, "tags"),
    ]:
        response = api.client.patch(path, headers=owner["headers"], json=body)
        assert response.status_code == 422 and field in response.json()["fields"], (body, response.text)


def test_a_patch_refuses_null_in_every_field(api: Api) -> None:
    """ServicePatchIn inherits PatchIn's rule: leaving a field out keeps it, sending null is refused."""
    owner = creator(api)
    path = f"/api/v1/services/{offer(api, owner)['id']}/"
    for field in ServicePatchIn.model_fields:
        response = api.client.patch(path, headers=owner["headers"], json={field: None})
        assert (response.status_code, response.json()) == (
            422,
            {"error": "Ошибка валидации данных.", "fields": {field: ["Поле не может быть пустым (null)."]}},
        ), field


def test_unparseable_bodies_are_400(api: Api) -> None:
    owner = creator(api)
    for content in (b"{nope", b"[1]"):
        response = api.client.post(
            "/api/v1/services/", headers=owner["headers"] | {"content-type": "application/json"}, content=content
        )
        assert response.status_code == 400 and set(response.json()) == {"error"}


# Editing and deactivating ---------------------------------------------------------------------


def test_the_owner_edits_fields_and_the_listing_follows(api: Api, clock: MovableClock) -> None:
    owner = creator(api)
    old, new = word(), word()
    created = offer(api, owner, title=f"Съёмка {old}", options=[{"name": "Срочно", "price": 200}])
    clock.advance(timedelta(seconds=5))
    kept = created["options"][0]["id"]
    category = categories(api)[2]
    response = api.client.patch(
        f"/api/v1/services/{created['id']}/",
        headers=owner["headers"],
        json={
            "title": f"Монтаж {new}",
            "base_price": 2500,
            "category_id": category,
            "options": [{"id": kept, "name": "Очень срочно", "price": 300}, {"name": "Музыка", "price": 50}],
            "tags": ["Новое"],
            "allows_modifications": False,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == f"Монтаж {new}" and body["description"] == created["description"]
    assert body["base_price"] == 2500 and body["category_id"] == category and body["tags"] == ["новое"]
    assert body["allows_modifications"] is False
    assert body["options"][0] == {"id": kept, "name": "Очень срочно", "description": "", "price": 300}
    assert body["options"][1]["id"] not in (kept, None)
    assert body["created_at"] == created["created_at"] and body["updated_at"] > created["updated_at"]
    assert api.client.get(f"/api/v1/services/{created['id']}/").json() == body
    assert listing(api, search=old)["count"] == 0
    assert ids(listing(api, search=new)) == [created["id"]]
    assert ids(listing(api, category=category, creator=owner["profile_id"])) == [created["id"]]


def test_an_option_id_of_another_service_is_refused(api: Api) -> None:
    owner = creator(api)
    first = offer(api, owner, options=[{"name": "a", "price": 1}])
    second = offer(api, owner)
    foreign = first["options"][0]["id"]
    response = api.client.patch(
        f"/api/v1/services/{second['id']}/",
        headers=owner["headers"],
        json={"options": [{"id": foreign, "name": "b", "price": 2}]},
    )
    assert response.status_code == 422
    assert response.json()["fields"] == {"options.0.id": ["Опция не относится к этому сервису."]}


def test_an_empty_patch_changes_nothing(api: Api) -> None:
    owner = creator(api)
    created = offer(api, owner)
    response = api.client.patch(f"/api/v1/services/{created['id']}/", headers=owner["headers"], json={})
    assert response.status_code == 200 and response.json() == created


def test_a_deactivated_service_leaves_the_listing_but_stays_readable(api: Api, clock: MovableClock) -> None:
    owner = creator(api)
    gone, stays = offer(api, owner), offer(api, owner)
    clock.advance(timedelta(seconds=1))
    path = f"/api/v1/services/{gone['id']}/"
    response = api.client.delete(path, headers=owner["headers"])
    assert response.status_code == 204 and response.content == b""
    assert ids(listing(api, creator=owner["profile_id"])) == [stays["id"]]
    detail = api.client.get(path).json()
    assert detail == gone | {"is_active": False, "updated_at": detail["updated_at"]}
    assert detail["updated_at"] > gone["updated_at"]
    assert api.client.get(f"/api/services/{gone['id']}/").json()["is_active"] is False
    assert api.client.delete(path, headers=owner["headers"]).status_code == 204
    assert api.client.delete(path.rstrip("/"), headers=owner["headers"]).status_code == 204


# The listing ----------------------------------------------------------------------------------


def test_the_listing_needs_no_token_and_pages_like_the_spec(api: Api) -> None:
    owner = creator(api)
    made = [offer(api, owner)["id"] for _ in range(5)]
    first = listing(api, creator=owner["profile_id"], page_size=2)
    assert first["count"] == 5 and ids(first) == made[::-1][:2] and first["previous"] is None
    assert first["next"].startswith(f"{api.settings.public_url}/api/v1/services/?") and "page=2" in first["next"]
    assert f"creator={owner['profile_id']}" in first["next"]
    last = listing(api, creator=owner["profile_id"], page_size=2, page=3)
    assert ids(last) == [made[0]] and last["next"] is None and "page=2" in last["previous"]
    second_previous = listing(api, creator=owner["profile_id"], page_size=2, page=2)["previous"]
    assert "page=" not in second_previous
    past = api.client.get("/api/v1/services/", params={"creator": owner["profile_id"], "page_size": 2, "page": 4})
    assert past.status_code == 404 and past.json() == NOT_FOUND
    for bad in ("0", "-1", "abc"):
        assert api.client.get("/api/v1/services/", params={"page": bad}).status_code == 404
    every = [i for p in (1, 2, 3) for i in ids(listing(api, creator=owner["profile_id"], page_size=2, page=p))]
    assert every == made[::-1]


def test_an_empty_listing_is_a_page_not_a_404(api: Api) -> None:
    assert listing(api, search=word()) == {"count": 0, "next": None, "previous": None, "results": []}


def test_page_size_is_capped_at_100(api: Api) -> None:
    owner = creator(api)
    for _ in range(101):
        offer(api, owner)
    capped = listing(api, creator=owner["profile_id"], page_size=1000)
    assert capped["count"] == 101 and len(capped["results"]) == 100 and "page=2" in capped["next"]
    assert len(listing(api, creator=owner["profile_id"])["results"]) == 20


def test_filters_alone_and_combined(api: Api) -> None:
    first, second = creator(api), creator(api)
    video, photo = categories(api)[:2]
    tag = word()
    a = offer(api, first, title=f"Видео {tag}", category_id=video, base_price=500)
    b = offer(api, first, title="Фото", description=f"Каталог {tag}", category_id=photo, base_price=1500)
    c = offer(api, second, title=f"Видео {tag}", category_id=video, base_price=2500.5)
    d = offer(api, second, title="Прочее", category_id=photo, base_price=1000)
    mine = {a["id"], b["id"], c["id"], d["id"]}

    def found(**params: Any) -> set[int]:
        return set(ids(listing(api, page_size=100, **params))) & mine

    assert found(search=tag) == {a["id"], b["id"], c["id"]}
    assert found(creator=first["profile_id"]) == {a["id"], b["id"]}
    assert found(category=video, search=tag) == {a["id"], c["id"]}
    assert found(min_price=1000, max_price=2500.5) == {b["id"], c["id"], d["id"]}
    assert found(min_price="1000.01", max_price=2500.49) == {b["id"]}
    assert found(search=tag, min_price=1000) == {b["id"], c["id"]}
    assert found(search=tag, max_price=999.99) == {a["id"]}
    assert found(category=photo, creator=second["profile_id"]) == {d["id"]}
    assert found(category=video, creator=second["profile_id"], search=tag, min_price=2500, max_price=3000) == {c["id"]}
    assert found(min_price=3000, max_price=100) == set()
    assert listing(api, search=tag, creator=second["profile_id"], category=photo)["count"] == 0
    # Empty parameters are no filter at all.
    assert found(search=tag, category="", min_price="", creator="") == {a["id"], b["id"], c["id"]}


def test_a_remembered_total_never_outlives_a_write(api: Api) -> None:
    owner = creator(api)
    tag = word()
    first = offer(api, owner, title=f"Первый {tag}")
    assert listing(api, search=tag)["count"] == 1 and listing(api, search=tag)["count"] == 1
    second = offer(api, owner, title=f"Второй {tag}")
    assert listing(api, search=tag)["count"] == 2
    api.client.delete(f"/api/v1/services/{first['id']}/", headers=owner["headers"])
    assert listing(api, search=tag) == listing(api, search=tag)
    assert listing(api, search=tag)["count"] == 1 and ids(listing(api, search=tag)) == [second["id"]]
    api.client.patch(f"/api/v1/services/{second['id']}/", headers=owner["headers"], json={"title": "Другое"})
    assert listing(api, search=tag)["count"] == 0


def test_a_search_walks_the_index_when_matches_are_dense_and_collects_them_when_rare() -> None:
    search, plain = ServiceFilters(search=("видео",)), ServiceFilters(category=1)
    assert not matches_first(search, PageRequest(2, 20), total=2_000, active=100_000)
    assert matches_first(search, PageRequest(2, 20), total=200, active=100_000)
    assert matches_first(search, PageRequest(100, 20), total=2_000, active=100_000)
    assert not matches_first(plain, PageRequest(2, 20), total=1, active=100_000)


@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
def test_both_ways_to_a_page_give_the_same_page(api: Api, settings: Settings, ordering: str) -> None:
    owner = creator(api)
    tag = word()
    for price in (300, 100, 200, 100, 250):
        offer(api, owner, title=f"Товар {tag}", base_price=price)
    offer(api, owner, title="Без слова", base_price=150)
    filters = ServiceFilters(search=(tag,), min_price=Decimal(100), max_price=Decimal(280), ordering=ordering)
    db = Database(settings.database_url)
    try:
        for page in (PageRequest(1, 2), PageRequest(2, 2), PageRequest(1, 20)):
            with db.transaction() as cur:
                walked, collected = (
                    cur.execute(*page_query(filters, page, db.dialect, matches_first=first)).fetchall()
                    for first in (False, True)
                )
            assert [r["id"] for r in walked] == [r["id"] for r in collected] and walked
    finally:
        db.close()
    assert [s["id"] for s in listing(api, search=tag, ordering=ordering, max_price=280, page_size=2)["results"]] == [
        r["id"] for r in walked[:2]
    ]


def test_search_is_case_insensitive_in_cyrillic_and_latin(api: Api) -> None:
    owner = creator(api)
    tag = word()
    made = offer(api, owner, title=f"МОНТАЖ Видео {tag}", description="Ролики для TikTok и Reels")["id"]
    for term in ("монтаж", "МОНТАЖ", "Монтаж", "видео", "ВИДЕО", "tiktok", "TIKTOK", "ролики для", "ж вид"):
        assert made in ids(listing(api, search=term, creator=owner["profile_id"])), term
    assert ids(listing(api, search=tag.upper())) == [made]
    assert ids(listing(api, search=f"  {tag}  ")) == [made]
    assert listing(api, search="видеомонтаж", creator=owner["profile_id"])["count"] == 0
    # Shorter than a trigram: still found (by a scan of the active rows).
    assert ids(listing(api, search="ИД", creator=owner["profile_id"])) == [made]


def test_search_reads_yo_as_ye_either_way(api: Api) -> None:
    """Russian is written with "ё" or "е" for the same word: a search for one found nothing of the other."""
    owner = creator(api)
    made = offer(api, owner, title=f"Самолёт {word()}", description="ЕЛКА и ёжик")["id"]
    for term in ("самолет", "САМОЛЁТ", "самолёт", "ёлка", "Елка", "ежик", "ЁЖИК", "ё", "лё"):
        assert ids(listing(api, search=term, creator=owner["profile_id"])) == [made], term


def test_search_reads_any_run_of_whitespace_as_one_space(api: Api) -> None:
    """A term typed with two spaces, or a phrase across a line break of a description, found nothing."""
    owner = creator(api)
    tag = word()
    made = offer(api, owner, title=f"Монтаж  рилсов {tag}", description="Быстро\nи\u00a0качественно")["id"]
    for term in ("монтаж рилсов", "монтаж   рилсов", "монтаж\tрилсов", "быстро и качественно", f"{tag} быстро", "о и"):
        assert ids(listing(api, search=term, creator=owner["profile_id"])) == [made], term


def test_search_finds_every_word_anywhere_in_the_title_or_description(api: Api) -> None:
    """As Django REST framework's SearchFilter, whose wording the spec keeps: the term's words (split at
    whitespace and commas) must each be in the title or the description, in any order and apart. The
    whole term was one substring: "сервис обычный" found nothing of "Обычный сервис"."""
    owner = creator(api)
    tag = word()
    made = offer(api, owner, title=f"Монтаж Reels-видео {tag}", description="Обычный сервис, быстро")["id"]
    other = offer(api, owner, title=f"Монтаж {tag}", description="Без коротких роликов")["id"]
    for term in (
        "сервис обычный",
        "REELS монтаж",
        "reels,монтаж",
        "видео,  быстро, ",
        "монтаж ы",
        "ы ж",
        "монтаж монтаж reels",
        f"{tag} видео сервис",
    ):
        page = listing(api, search=term, creator=owner["profile_id"])
        assert (ids(page), page["count"]) == ([made], 1), term
    for term in ("монтаж", f"  {tag}  ", "монтаж ,", "ж,,т", ","):
        page = listing(api, search=term, creator=owner["profile_id"])
        assert (sorted(ids(page)), page["count"]) == (sorted([made, other]), 2), term
    for term in ("монтаж роликов обычный", "reels роликов", "монтаж %", "монтаж _", "reels щ"):
        assert listing(api, search=term, creator=owner["profile_id"])["count"] == 0, term
    ten = " ".join(["монтаж", "reels", "видео", tag, "обычный", "сервис", "быстро", "ы", "ж", "м"])
    assert ids(listing(api, search=ten, creator=owner["profile_id"])) == [made]


def test_a_search_of_more_than_ten_words_is_422(api: Api) -> None:
    """More words would be cut short (finding texts without the words left out) or cost one more index
    lookup each: refused, as a term past 100 characters is. A repeated word counts once."""
    response = api.client.get("/api/v1/services/", params={"search": " ".join("абвгдежзийк")})
    assert (response.status_code, response.json()) == (
        422,
        refused("search", "Убедитесь, что поиск содержит не более 10 слов."),
    )
    owner = creator(api)
    made = offer(api, owner)["id"]
    assert ids(listing(api, search=" ".join(["видео"] * 11), creator=owner["profile_id"])) == [made]


# Rows the words of `test_each_word_of_a_search_is_looked_up_in_the_index` are in none of.
UNMATCHED_ROWS = """INSERT INTO services (id, uuid, version, creator_profile_id, creator_user_id, creator_username,
    category_id, title, description, base_price, price_minor, delivery_time, options, tags, allows_modifications,
    modifications_price, is_active, created_at, updated_at, search_text)
    SELECT 1000000000000 + n, 'unmatched-' || n, 1, 0, 0, 'u', 0, 't', 'd', 1, 100, 1, '[]', '[]', false, 0, true,
        now(), now(), md5(n::text) || ' ' || md5((n * 7)::text)
    FROM generate_series(1, 5000) AS n"""


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A node of an `EXPLAIN (FORMAT JSON)` plan and all those under it."""
    return [node, *(found for child in node.get("Plans", []) for found in _plan_nodes(child))]


def test_each_word_of_a_search_is_looked_up_in_the_index(api: Api, settings: Settings) -> None:
    """A term of several words is one condition per word, each served by the search index: on
    PostgreSQL one Bitmap Index Scan of the trigram index with a LIKE per word (over 5,000 rows
    added in a transaction rolled back, so that the table is worth an index), on SQLite one FTS5
    MATCH with a phrase per word."""
    db = Database(settings.database_url)
    try:
        sql, params = count_query(ServiceFilters(search=search_words("Монтаж, обычный")), db.dialect)
        if db.dialect == "sqlite":
            assert params == ['"монтаж" "обычный"']
            with db.read() as cur:
                plan = cur.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            assert any("services_search VIRTUAL TABLE" in row["detail"] for row in plan), plan
            return
    finally:
        db.close()
    with psycopg.connect(settings.database_url) as conn:
        try:
            conn.execute(UNMATCHED_ROWS)
            # Into the index proper: what waits in its pending list the planner prices as a scan of it all.
            conn.execute("SELECT gin_clean_pending_list('services_search_trgm')")
            conn.execute("ANALYZE services")
            explained = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
        finally:
            conn.rollback()
    assert explained is not None
    scans = [node for node in _plan_nodes(explained[0][0]["Plan"]) if node.get("Index Name") == "services_search_trgm"]
    assert [scan["Index Cond"] for scan in scans] == [
        "((search_text ~~ '%монтаж%'::text) AND (search_text ~~ '%обычный%'::text))"
    ], json.dumps(explained[0], ensure_ascii=False, indent=1)


def test_search_treats_like_wildcards_as_text(api: Api) -> None:
    owner = creator(api)
    tag = word()
    percent = offer(api, owner, title=f"Скидка 50% {tag}")["id"]
    offer(api, owner, title=f"Скидка 500 {tag}")
    underscore = offer(api, owner, title=f"snake_case {tag}")["id"]
    offer(api, owner, title=f"snakeXcase {tag}")
    assert ids(listing(api, search="50%", creator=owner["profile_id"])) == [percent]
    assert ids(listing(api, search="e_c", creator=owner["profile_id"])) == [underscore]
    assert listing(api, search='"кавычки"', creator=owner["profile_id"])["count"] == 0


def test_ordering(api: Api, clock: MovableClock) -> None:
    owner = creator(api)
    made = []
    for price in (300, 100, 200, 100):
        made.append(offer(api, owner, base_price=price)["id"])
        clock.advance(timedelta(seconds=1))
    cheap_first, cheap_second = made[1], made[3]

    def order(value: str | None) -> list[int]:
        params: dict[str, Any] = {"creator": owner["profile_id"]}
        if value is not None:
            params["ordering"] = value
        return ids(listing(api, **params))

    assert order(None) == order("-created_at") == made[::-1]
    assert order("created_at") == made
    assert order("price") == [cheap_first, cheap_second, made[2], made[0]]
    assert order("-price") == [made[0], made[2], cheap_second, cheap_first]
    # Every rating is 0 until orders are reviewed: ties go by id, in the asked direction.
    assert order("rating") == sorted(made) and order("-rating") == sorted(made, reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_price": "abc"}, "min_price"),
        ({"max_price": "1,5"}, "max_price"),
        ({"min_price": "-1"}, "min_price"),
        ({"max_price": "NaN"}, "max_price"),
        ({"max_price": "1e13"}, "max_price"),
        ({"category": "видео"}, "category"),
        ({"category": "1.5"}, "category"),
        ({"creator": "-3"}, "creator"),
        ({"creator": "0"}, "creator"),
        ({"creator": "99999999999999999999"}, "creator"),
        ({"ordering": "title"}, "ordering"),
        ({"ordering": "-id"}, "ordering"),
        ({"search": "п" * 101}, "search"),
    ],
)
def test_bad_filter_values_are_a_422_naming_the_filter(api: Api, params: dict[str, str], field: str) -> None:
    response = api.client.get("/api/v1/services/", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "Ошибка валидации данных."
    assert list(response.json()["fields"]) == [field]


def test_the_schema_documents_the_service_routes(api: Api) -> None:
    paths = api.client.get("/api/schema/").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/services/"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/services/{id}/"])
    assert "get" in paths["/api/services/{id}/"]
    names = {p["name"] for p in paths["/api/v1/services/"]["get"]["parameters"]}
    assert {"category", "creator", "search", "min_price", "max_price", "ordering", "page", "page_size"} <= names


# Rebuild ----------------------------------------------------------------------------------------


def test_a_rebuilt_listing_equals_the_live_one(api: Api, settings: Settings) -> None:
    owner = creator(api)
    tag = word()
    kept = offer(api, owner, title=f"Сохранится {tag}")
    edited = offer(api, owner, title="Было")
    api.client.patch(f"/api/v1/services/{edited['id']}/", headers=owner["headers"], json={"title": f"Стало {tag}"})
    gone = offer(api, owner, title=f"Уйдёт {tag}")
    api.client.delete(f"/api/v1/services/{gone['id']}/", headers=owner["headers"])
    before = api.client.get("/api/v1/services/", params={"page_size": 100, "search": tag}).json()

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        with db.transaction() as cur:
            live = cur.execute("SELECT * FROM services ORDER BY id").fetchall()
        projection = ListingsProjection()
        runner = ProjectionRunner(db, stores, [projection], Progress())
        runner.reset(projection)
        runner.catch_up()
        with db.transaction() as cur:
            rebuilt = cur.execute("SELECT * FROM services ORDER BY id").fetchall()
    finally:
        stores.close()
        db.close()
    assert rebuilt == live
    after = api.client.get("/api/v1/services/", params={"page_size": 100, "search": tag}).json()
    assert after == before and ids(after) == [edited["id"], kept["id"]]


def test_answers_remembered_by_one_process_show_writes_made_through_another(
    api: Api, settings: Settings, clock: MovableClock
) -> None:
    """Two servers on one database: each remembers listing answers, neither ever shows a stale one."""
    with new_client(settings, clock) as other_client:
        other = Api(other_client, settings)
        owner = creator(api)
        tag = word()
        service = offer(api, owner, title=f"Обзор {tag}")
        detail = f"/api/v1/services/{service['id']}/"
        for _ in range(2):  # the second answer comes from the other server's memory
            assert ids(listing(other, search=tag)) == [service["id"]]
            assert other.client.get(detail).json()["title"] == f"Обзор {tag}"
        edited = api.client.patch(detail, headers=owner["headers"], json={"title": f"Съёмка {tag}"})
        assert edited.status_code == 200, edited.text
        assert listing(other, search=tag)["results"][0]["title"] == f"Съёмка {tag}"
        assert other.client.get(detail).json()["title"] == f"Съёмка {tag}"
        assert other.client.get(f"/api/services/{service['id']}/").json()["title"] == f"Съёмка {tag}"
        assert api.client.delete(detail, headers=owner["headers"]).status_code == 204
        assert listing(other, search=tag)["count"] == 0
        assert other.client.get(detail).json()["is_active"] is False


# Texts whose pieces of one and two characters cover what a short term may be: Cyrillic with ё,
# Latin, digits, LIKE's wildcards, a space between words, and letters whose casefold is longer.
SHORT_TERM_TEXTS = (
    ("Ёж и ёлка", "Монтаж 4K, 50% скидка"),
    ("a_b STRASSE", "Größe: ﬁx"),
    ("Xy", "z"),
)


def _found(db: Database, owner: dict[str, Any], term: str) -> list[int]:
    """The ids `list_services` gives for `term` among `owner`'s services, counted afresh."""
    page, _ = list_services(
        db, ServiceFilters(search=search_words(term), creator=owner["profile_id"]), PageRequest(1, 100), ListingTotals()
    )
    return sorted(int(row["id"]) for row in page.rows)


def _by_pieces(db: Database, owner: dict[str, Any], term: str) -> tuple[list[int], int]:
    """The ids and the total of `term` among `owner`'s services, through `service_grams`."""
    filters = ServiceFilters(search=search_words(term), creator=owner["profile_id"])
    with db.read() as cur:
        rows = cur.execute(
            *page_query(filters, PageRequest(1, 100), db.dialect, matches_first=True, grams=True)
        ).fetchall()
        counted = cur.execute(*count_query(filters, db.dialect, grams=True)).fetchone()
    return sorted(int(row["id"]) for row in rows), int(counted["n"]) if counted else -1


def _short_terms(texts: list[str]) -> list[str]:
    """Every piece of one or two characters of `texts` a client can search (the API strips a term),
    a few found nowhere, and a few terms of several words."""
    pieces = {text[i : i + n] for text in texts for n in (1, 2) for i in range(len(text) - n + 1)}
    return sorted(
        {piece for piece in pieces if piece.strip() == piece}
        | {"щщ", "%%", "_x", "q"}
        | {"ж 4k", "4k ж", "xy z", "ж щщ", "ё, и", "монтаж 4k", "монтаж xy", "strasse a_"}
    )


def test_a_short_term_finds_exactly_the_services_whose_text_holds_it(api: Api, settings: Settings) -> None:
    """A term of one or two characters has no trigram: PostgreSQL looks it up in `service_grams`,
    and finds what a scan of the texts finds (the same terms with the listing's tables taken as
    older than the pieces)."""
    owner = creator(api)
    made = {offer(api, owner, title=title, description=text)["id"]: (title, text) for title, text in SHORT_TERM_TEXTS}
    gone, edited = list(made)[1:]
    api.client.delete(f"/api/v1/services/{gone}/", headers=owner["headers"])
    patched = api.client.patch(f"/api/v1/services/{edited}/", headers=owner["headers"], json={"title": "Вт"})
    assert patched.status_code == 200, patched.text
    made[edited] = ("Вт", made[edited][1])
    texts = {number: search_text(*made[number]) for number in made if number != gone}
    terms = _short_terms([*texts.values(), search_text(*made[gone])])
    assert any(len(search_words(term)) > 1 for term in terms) and len(terms) > 50
    db = Database(settings.database_url)
    try:
        if db.dialect == "postgresql":
            with db.read() as cur:
                rows = cur.execute(
                    "SELECT search_text, grams FROM services JOIN service_grams USING (id) "
                    "WHERE creator_profile_id = %s",
                    (owner["profile_id"],),
                ).fetchall()
            assert len(rows) == len(made) and all(row["grams"] == search_grams(row["search_text"]) for row in rows)
        expected = {
            term: sorted(n for n, text in texts.items() if all(word in text for word in search_words(term)))
            for term in terms
        }
        assert {term: _found(db, owner, term) for term in terms} == expected
        if db.dialect == "postgresql":
            # Through the pieces, whatever the sample of the whole listing says of each term.
            assert {term: _by_pieces(db, owner, term) for term in terms} == {
                term: (found, len(found)) for term, found in expected.items()
            }
            with db.transaction(write=True) as cur:
                versions.record(cur, PROJECTION, LISTINGS_VERSION - 1)
            try:
                assert {term: _found(db, owner, term) for term in terms} == expected
            finally:
                with db.transaction(write=True) as cur:
                    versions.record(cur, PROJECTION, LISTINGS_VERSION)
    finally:
        db.close()


def test_an_older_listing_gets_the_pieces_of_short_terms_by_a_blue_green_rebuild(api: Api, settings: Settings) -> None:
    """A database made before `service_grams` gets the table empty, not a rewind (readers would see
    an empty listing): its listing is taken as the version before, which the runners rebuild."""
    owner = creator(api)
    made = offer(api, owner, title="Ъю", description="юъ")["id"]
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        with db.transaction(write=True) as cur:
            position = _positions(cur)
            cur.execute("DROP TABLE service_grams")  # as a database made before it was
        migrate(db)
        assert versions.stored(db)[PROJECTION] == GRAMS_VERSION - 1
        with db.read() as cur:
            assert _positions(cur) == position  # not rewound
            assert cur.execute("SELECT COUNT(*) AS n FROM service_grams").fetchone() == {"n": 0}
        assert _found(db, owner, "ъю") == [made]  # scanned meanwhile
        assert rebuild_outdated(db, stores, lambda: [ListingsProjection()], threading.Event()) == [PROJECTION]
        assert versions.stored(db)[PROJECTION] == LISTINGS_VERSION
        with db.read() as cur:
            row = cur.execute(
                "SELECT search_text, grams FROM services LEFT JOIN service_grams USING (id) WHERE id = %s", (made,)
            ).fetchone()
        kept = search_grams(row["search_text"]) if row is not None and db.dialect == "postgresql" else None
        assert row is not None and row["grams"] == kept
        assert _found(db, owner, "ъю") == [made] and _found(db, owner, "юю") == []
        migrate(db)  # a database that has the table is left as it is
        assert versions.stored(db)[PROJECTION] == LISTINGS_VERSION
    finally:
        stores.close()
        db.close()


def _positions(cur: Cursor) -> dict[str, int]:
    rows = cur.execute("SELECT application, position FROM projection_tracking WHERE projection = %s", (PROJECTION,))
    return {row["application"]: int(row["position"]) for row in rows.fetchall()}
