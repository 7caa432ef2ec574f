"""What an `Idempotency-Key` is claimed for: a JSON body as the API reads it, not its bytes. A client
that serialises the same body again for its retry (names in another order, other whitespace,
characters escaped) gets the first answer; a body the API reads otherwise is another request."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

from api.errors import message
from tests.conftest import Api, refused
from tests.orders_world import Deal, a_deal, place

KEY_REUSED = refused("Idempotency-Key", message("idempotency_key_reused"))
JSON_TYPE = {"Content-Type": "application/json"}


def order_body(deal: Deal) -> dict[str, Any]:
    return {
        "service_id": deal.service["id"],
        "requirements": "Обзор «под ключ»",
        "delivery_date": (date.today() + timedelta(days=5)).isoformat(),
        "selected_option_ids": [option["id"] for option in deal.service["options"]],
    }


def placed_by(api: Api, deal: Deal) -> list[int]:
    listed = api.client.get("/api/v1/orders/", headers=deal.buyer["headers"], params={"page_size": 100}).json()
    return [order["id"] for order in listed["results"]]


def test_the_same_body_serialised_again_is_the_same_request(api: Api) -> None:
    deal = a_deal(api)
    headers = deal.buyer["headers"] | JSON_TYPE | {"Idempotency-Key": uuid.uuid4().hex}
    body = order_body(deal)
    compact = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    first = api.client.post("/api/v1/orders/", headers=headers, content=compact.encode())
    assert first.status_code == 201, first.text
    reordered = dict(reversed(list(body.items())))
    for again in (json.dumps(reordered, indent=2), json.dumps(body, ensure_ascii=True) + "\n"):
        retry = api.client.post("/api/v1/orders/", headers=headers, content=again.encode())
        assert (retry.status_code, retry.headers.get("idempotent-replayed")) == (201, "true"), retry.text
        assert retry.json() == first.json()
    assert placed_by(api, deal) == [first.json()["id"]]


def test_a_number_written_otherwise_is_another_request(api: Api) -> None:
    """An id written as `5.0` is refused where `5` is taken: numbers are compared as written."""
    deal = a_deal(api)
    headers = deal.buyer["headers"] | JSON_TYPE | {"Idempotency-Key": uuid.uuid4().hex}
    body = json.dumps(order_body(deal))
    first = api.client.post("/api/v1/orders/", headers=headers, content=body)
    assert first.status_code == 201, first.text
    as_fraction = body.replace(f'"service_id": {deal.service["id"]}', f'"service_id": {deal.service["id"]}.0')
    assert as_fraction != body
    unkeyed = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"] | JSON_TYPE, content=as_fraction)
    assert unkeyed.status_code == 422 and list(unkeyed.json()["fields"]) == ["service_id"], unkeyed.text
    keyed = api.client.post("/api/v1/orders/", headers=headers, content=as_fraction)
    assert (keyed.status_code, keyed.json()) == (422, KEY_REUSED)


def test_a_name_given_twice_counts_with_its_last_value_as_the_api_reads_it(api: Api) -> None:
    deal = a_deal(api)
    other = api.service(deal.creator)
    headers = deal.buyer["headers"] | JSON_TYPE | {"Idempotency-Key": uuid.uuid4().hex}
    body = order_body(deal)
    first = api.client.post("/api/v1/orders/", headers=headers, content=json.dumps(body))
    assert first.status_code == 201 and first.json()["service"]["id"] == deal.service["id"], first.text
    rest = json.dumps({name: value for name, value in body.items() if name != "service_id"})[1:-1]
    last_is_the_same = f'{{"service_id": {other["id"]}, {rest}, "service_id": {deal.service["id"]}}}'
    same = api.client.post("/api/v1/orders/", headers=headers, content=last_is_the_same)
    assert (same.status_code, same.headers.get("idempotent-replayed")) == (201, "true"), same.text
    last_is_another = f'{{"service_id": {deal.service["id"]}, {rest}, "service_id": {other["id"]}}}'
    another = api.client.post("/api/v1/orders/", headers=headers, content=last_is_another)
    assert (another.status_code, another.json()) == (422, KEY_REUSED)
    assert placed_by(api, deal) == [first.json()["id"]]


def test_no_body_and_an_empty_object_are_the_same_request(api: Api) -> None:
    deal = a_deal(api)
    order = place(api, deal)["id"]
    headers = deal.creator["headers"] | {"Idempotency-Key": uuid.uuid4().hex}
    first = api.client.post(f"/api/v1/orders/{order}/accept/", headers=headers, json={})
    assert first.status_code == 200, first.text
    retry = api.client.post(f"/api/v1/orders/{order}/accept/", headers=headers)
    assert (retry.status_code, retry.headers.get("idempotent-replayed")) == (200, "true"), retry.text
    assert retry.json() == first.json()


def test_a_key_is_each_users_own(api: Api) -> None:
    """Two users who happen to draw the same key each get their own order."""
    deal = a_deal(api)
    other = api.verified_user()
    key = {"Idempotency-Key": "order-1"}
    mine = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"] | key, json=order_body(deal))
    theirs = api.client.post("/api/v1/orders/", headers=other["headers"] | key, json=order_body(deal))
    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_key_sent_to_another_route_is_another_request(api: Api) -> None:
    deal = a_deal(api)
    headers = deal.buyer["headers"] | {"Idempotency-Key": uuid.uuid4().hex}
    assert api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal)).status_code == 201
    elsewhere = api.client.post("/api/v1/conversations/", headers=headers, json={"recipient_id": deal.creator["id"]})
    assert (elsewhere.status_code, elsewhere.json()) == (422, KEY_REUSED)
