"""Text no backend can store is refused at the edge, so it never reaches the log and wedges a projection.

PostgreSQL text cannot hold NUL (SQLite can), so these tests matter most on the `postgres` parameter:
there, one accepted NUL used to stop the context's projection for good and every later write of every
user answered 503. Each case is refused with 422, and afterwards the same kinds of writes still succeed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api
from tests.orders_world import a_deal, act, order_in, place
from tests.test_api_portfolio import PNG

REFUSED = "Текст содержит недопустимые управляющие символы."

# NUL, the other C0 controls a form or JSON can carry, and a lone surrogate (psycopg cannot encode one).
BAD_TEXTS = ["a\u0000b", "a\u0007b", "a\u001bb", "a\ud800b"]


def refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json() == {"error": "Ошибка валидации данных.", "fields": {field: [REFUSED]}}


def still_writable(api: Api) -> None:
    """Registration, a service, an order and a chat message all still answer 2xx: no projection is stuck."""
    deal = a_deal(api)
    place(api, deal)
    chat = api.client.post(
        "/api/v1/conversations/", headers=deal.buyer["headers"], json={"recipient_id": deal.creator["id"]}
    )
    assert chat.status_code == 201, chat.text
    said = api.client.post(
        f"/api/v1/conversations/{chat.json()['id']}/messages/", headers=deal.buyer["headers"], json={"message": "ok"}
    )
    assert said.status_code == 201, said.text


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_registration_refuses_unstorable_names_and_keeps_working(api: Api, text: str) -> None:
    body = {"username": "nul_user", "email": "nul@example.com", "password": "correct-horse-battery"}
    for field in ("first_name", "last_name"):
        # Escaped JSON, as a client would send it: a lone surrogate has no UTF-8 form of its own.
        sent = json.dumps(body | {field: text})
        response = api.client.post("/api/auth/register/", content=sent, headers={"Content-Type": "application/json"})
        refused(response, field)
    still_writable(api)


def test_every_text_bearing_command_refuses_nul(api: Api) -> None:
    deal = a_deal(api, allows_modifications=True)
    buyer, creator = deal.buyer["headers"], deal.creator["headers"]
    bad = "a\u0000b"
    client = api.client

    refused(client.patch("/api/v1/users/me/", headers=buyer, json={"bio": bad}), "bio")
    other = api.verified_user()
    refused(
        client.post("/api/v1/users/me/creator-profile/", headers=other["headers"], json={"specialization": bad}),
        "specialization",
    )
    refused(
        client.patch("/api/v1/users/me/creator-profile/", headers=creator, json={"social_links": {"vk": bad}}),
        "social_links.vk",
    )

    service = deal.service
    categories = client.get("/api/v1/categories/").json()["results"]
    new_service = {"description": "d", "category_id": categories[0]["id"], "base_price": 10, "delivery_time": 1}
    refused(client.post("/api/v1/services/", headers=creator, json=new_service | {"title": bad}), "title")
    refused(
        client.post(
            "/api/v1/services/",
            headers=creator,
            json=new_service | {"title": "t", "options": [{"name": "o", "price": 1, "description": bad}]},
        ),
        "options.0.description",
    )
    refused(
        client.post("/api/v1/services/", headers=creator, json=new_service | {"title": "t", "tags": [bad]}), "tags.0"
    )
    refused(
        client.patch(f"/api/v1/services/{service['id']}/", headers=creator, json={"description": bad}), "description"
    )

    refused(
        client.post(
            "/api/portfolio/",
            headers=creator,
            data={"title": bad, "description": "d"},
            files={"cover_image": ("c.png", PNG, "image/png")},
        ),
        "title",
    )
    item = client.post(
        "/api/portfolio/", headers=creator, data={"title": "t"}, files={"cover_image": ("c.png", PNG, "image/png")}
    )
    assert item.status_code == 201, item.text
    refused(
        client.patch(f"/api/portfolio/{item.json()['id']}/", headers=creator, json={"description": bad}), "description"
    )
    refused(
        client.post(
            "/api/portfolio-images/",
            headers=creator,
            data={"portfolio_item": str(item.json()["id"]), "caption": bad},
            files={"image": ("i.png", PNG, "image/png")},
        ),
        "caption",
    )

    orders = "/api/v1/orders/"
    placing = {"service_id": service["id"], "delivery_date": "2099-01-01", "requirements": bad}
    refused(client.post(orders, headers=buyer, json=placing), "requirements")
    pending = place(api, deal)["id"]
    refused(client.patch(f"{orders}{pending}/", headers=buyer, json={"requirements": bad}), "requirements")
    refused(client.post(f"{orders}{pending}/cancel/", headers=buyer, json={"reason": bad}), "reason")
    refused(client.post(f"{orders}{pending}/deliveries/", headers=creator, json={"message": bad}), "message")
    delivered = order_in(api, deal, "delivered")
    refused(client.post(f"{orders}{delivered}/request-revision/", headers=buyer, json={"message": bad}), "message")
    act(api, deal.buyer, delivered, "approve")
    refused(client.post(f"{orders}{delivered}/reviews/", headers=buyer, json={"rating": 5, "content": bad}), "content")

    chat = client.post("/api/v1/conversations/", headers=buyer, json={"recipient_id": deal.creator["id"]}).json()
    refused(
        client.post(f"/api/v1/conversations/{chat['id']}/messages/", headers=buyer, json={"message": bad}), "message"
    )

    still_writable(api)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/services/?search=a%00b",
        "/api/v1/services/?search=%1B",
        "/api/v1/categories/?search=a%00b",
        "/api/v1/orders/?status=a%00b",
        "/api/v1/orders/1/?as_of=a%00b",
    ],
)
def test_query_parameters_with_control_characters_are_422(api: Api, url: str) -> None:
    user = api.user()
    response = api.client.get(url, headers=user["headers"])
    assert response.status_code == 422, response.text
    name = url.split("?")[1].split("=")[0]
    assert response.json() == {"error": "Ошибка валидации данных.", "fields": {name: [REFUSED]}}


@pytest.mark.parametrize("path", ["/healthz/", "/api/v1/users/me/", "/api/skills/1/", "/api/schema/"])
def test_an_operation_that_reads_no_query_ignores_one_it_could_not_store(api: Api, path: str) -> None:
    # Its document lists no 422 (api/openapi.py adds one only where a query is read): a query it never
    # reads reaches nothing to be refused for. It was answered 422 by a check before any route.
    user = api.user()
    plain = api.client.get(path, headers=user["headers"])
    odd = api.client.get(f"{path}?x=a%00b&%1B=1", headers=user["headers"])
    assert odd.status_code == plain.status_code == 200, odd.text


def test_an_unstorable_query_is_refused_only_once_the_token_is_checked(api: Api) -> None:
    # DESIGN.md's order of checks, as for any other wrong query value (`?status=bogus`): 401 first.
    for query in ("status=bogus", "status=a%00b"):
        response = api.client.get(f"/api/v1/orders/?{query}")
        assert (response.status_code, response.json()) == (401, {"detail": "Учетные данные не были предоставлены."})
        response = api.client.get(f"/api/v1/orders/?{query}", headers={"Authorization": "Bearer nonsense"})
        assert (response.status_code, response.json()) == (401, {"detail": "Токен недействителен или просрочен."})


def test_an_idempotency_key_with_a_control_character_is_422(api: Api) -> None:
    deal = a_deal(api)
    response = api.client.post(
        "/api/v1/orders/",
        headers=deal.buyer["headers"] | {"Idempotency-Key": "key\x1fone"},
        json={"service_id": deal.service["id"], "delivery_date": "2099-01-01"},
    )
    assert response.status_code == 422, response.text
    assert list(response.json()["fields"]) == ["Idempotency-Key"]


def test_tabs_and_line_breaks_are_text(api: Api) -> None:
    deal = a_deal(api)
    order = place(api, deal, requirements="Строка 1\r\nСтрока 2\tс табом")
    assert order["requirements"] == "Строка 1\r\nСтрока 2\tс табом"


def test_a_lone_surrogate_in_a_portfolio_json_update_is_422(api: Api) -> None:
    """A portfolio update's JSON fields are fingerprinted for its `Idempotency-Key` before they are
    checked: a lone surrogate in a value or a name was a 500 there, with or without a key."""
    creator = api.creator()["headers"]
    files = {"cover_image": ("c.png", PNG, "image/png")}
    item = api.client.post("/api/portfolio/", headers=creator, data={"title": "t"}, files=files).json()
    image = api.client.post(
        "/api/portfolio-images/",
        headers=creator,
        data={"portfolio_item": str(item["id"])},
        files={"image": ("i.png", PNG, "image/png")},
    ).json()
    json_body = {"Content-Type": "application/json"}
    for path, field in (
        (f"/api/portfolio/{item['id']}/", "description"),
        (f"/api/portfolio-images/{image['id']}/", "caption"),
    ):
        for method in ("PUT", "PATCH"):
            value = api.client.request(method, path, headers=creator | json_body, content=f'{{"{field}": "a\\ud800b"}}')
            refused(value, field)
            name = api.client.request(method, path, headers=creator | json_body, content='{"\\udc00": "x"}')
            refused(name, "non_field_errors")
    still_writable(api)
