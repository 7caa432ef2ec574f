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


# The header itself: draft-ietf-httpapi-idempotency-key-header sends the key as a quoted sf-string.

KEY_INVALID = refused("Idempotency-Key", "Idempotency-Key должен быть непустой строкой не длиннее 255 символов.")
KEY_MALFORMED = refused(
    "Idempotency-Key",
    'Idempotency-Key в кавычках должен быть одной строкой "ключ" (RFC 8941): печатные символы ASCII, '
    'а " и \\ внутри — после \\.',
)
KEY_REPEATED = refused("Idempotency-Key", "Idempotency-Key передан несколько раз; передайте один.")


def test_a_quoted_key_is_the_key_without_its_quotes(api: Api) -> None:
    """`"abc"` (the draft's sf-string) and `abc` are one key; an sf-string's escapes are read."""
    deal = a_deal(api)
    key = uuid.uuid4().hex
    first = api.client.post(
        "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": f'"{key}"'}, json=order_body(deal)
    )
    assert first.status_code == 201, first.text
    bare = api.client.post(
        "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": key}, json=order_body(deal)
    )
    assert (bare.status_code, bare.headers.get("idempotent-replayed")) == (201, "true"), bare.text
    assert bare.json() == first.json()
    escaped = api.client.post(
        "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": f'"x\\\\{key}"'}, json=order_body(deal)
    )
    assert escaped.status_code == 201 and "idempotent-replayed" not in escaped.headers, escaped.text
    unescaped = api.client.post(
        "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": f"x\\{key}"}, json=order_body(deal)
    )
    assert (unescaped.status_code, unescaped.headers.get("idempotent-replayed")) == (201, "true"), unescaped.text
    assert unescaped.json() == escaped.json()
    assert sorted(placed_by(api, deal)) == sorted([first.json()["id"], escaped.json()["id"]])


def test_a_key_badly_quoted_is_refused_and_runs_nothing(api: Api) -> None:
    deal = a_deal(api)
    for sent in ('"abc', 'abc"', '"a"b"', '"a\\b"', '"a", "b"', '"a";p=1', '""', '"ключ"'.encode()):
        headers = deal.buyer["headers"] | {"Idempotency-Key": sent}
        refused_key = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
        expected = KEY_INVALID if sent == '""' else KEY_MALFORMED
        assert (refused_key.status_code, refused_key.json()) == (422, expected), sent
    assert placed_by(api, deal) == []


def test_the_keys_limit_counts_characters_not_bytes(api: Api) -> None:
    """A key is text: 128 Cyrillic letters (256 bytes of UTF-8) are 128 characters, within 255."""
    deal = a_deal(api)
    for size in (128, 255):
        key = ("ключ" * 64)[:size].encode()
        placed = api.client.post(
            "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": key}, json=order_body(deal)
        )
        assert placed.status_code == 201, (size, placed.text)
        again = api.client.post(
            "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": key}, json=order_body(deal)
        )
        assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true"), size
    for key in (("ключ" * 64).encode(), b"k" * 256, f'"{"k" * 256}"'.encode()):
        too_long = api.client.post(
            "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": key}, json=order_body(deal)
        )
        assert (too_long.status_code, too_long.json()) == (422, KEY_INVALID), key[:10]
    assert len(placed_by(api, deal)) == 2


def test_two_key_header_lines_are_refused_not_the_first_taken(api: Api) -> None:
    deal = a_deal(api)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    for lines in ([first, second], [first, first], [f'"{first}"', first]):
        headers = [*deal.buyer["headers"].items(), *(("Idempotency-Key", line) for line in lines)]
        twice = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
        assert (twice.status_code, twice.json()) == (422, KEY_REPEATED), lines
    assert placed_by(api, deal) == []
