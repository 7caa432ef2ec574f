"""Which answers an `Idempotency-Key` keeps: those of a command decided on the state its caller saw
(2xx, 409), replayed for the day; a refusal that decided nothing (400, 403, 404, 412, 422) lets
the key go, so a retry, the same request or a corrected one, runs afresh; a 401, or the 403 of an
unverified e-mail, comes before the key is claimed at all.

A key let go is shown by the same key then taking another request (a kept key answers that 422
"used for another request"), or by the same request running again, with no `Idempotent-Replayed`.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from api.errors import message
from tests.conftest import Api, mailed_token, refused, version_of
from tests.orders_world import Deal, a_deal, act, order_in, place
from ugc.clock import MovableClock

KEY_REUSED = refused("Idempotency-Key", message("idempotency_key_reused"))


def keyed(user: dict[str, Any], key: str | None = None) -> dict[str, str]:
    headers: dict[str, str] = user["headers"]
    return headers | {"Idempotency-Key": key or uuid.uuid4().hex}


def order_body(deal: Deal) -> dict[str, Any]:
    return {"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=5)).isoformat()}


def test_a_412_lets_go_of_the_key_and_the_corrected_if_match_applies(api: Api) -> None:
    """The client read the order, another change moved it on (412); it reads the new version and sends
    the same change with it and the same key: the change applies, where the 412 was replayed for 24 h."""
    deal = a_deal(api)
    url = f"/api/v1/orders/{place(api, deal)['id']}/"
    assert api.client.patch(url, headers=deal.buyer["headers"], json={"requirements": "Версия 2"}).status_code == 200
    headers = keyed(deal.buyer)
    change = {"requirements": "Версия 3"}
    stale = api.client.patch(url, headers=headers | {"If-Match": '"1"'}, json=change)
    assert (stale.status_code, stale.json()["version"], stale.headers["etag"]) == (412, 2, '"2"'), stale.text
    again = api.client.patch(url, headers=headers | {"If-Match": '"1"'}, json=change)
    assert again.status_code == 412 and "idempotent-replayed" not in again.headers, again.text
    corrected = api.client.patch(url, headers=headers | {"If-Match": stale.headers["etag"]}, json=change)
    assert corrected.status_code == 200, corrected.text
    assert "idempotent-replayed" not in corrected.headers
    assert (corrected.json()["requirements"], version_of(corrected)) == ("Версия 3", 3)
    replayed = api.client.patch(url, headers=headers | {"If-Match": stale.headers["etag"]}, json=change)
    assert (replayed.status_code, replayed.headers["idempotent-replayed"]) == (200, "true"), replayed.text
    assert replayed.json() == corrected.json()


def test_a_refused_body_lets_go_of_the_key_for_the_body_fixed(api: Api) -> None:
    """A 422 for a field, or a 400 for a body that is not JSON: the client fixes the body and sends it
    with the same key; it was answered that the key was used for another request."""
    deal = a_deal(api)
    headers = keyed(deal.buyer)
    missing = api.client.post("/api/v1/orders/", headers=headers, json={"service_id": deal.service["id"]})
    assert missing.status_code == 422 and "delivery_date" in missing.json()["fields"], missing.text
    broken = api.client.post("/api/v1/orders/", headers=headers | {"Content-Type": "application/json"}, content="{")
    assert broken.status_code == 400, broken.text
    placed = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert placed.status_code == 201 and "idempotent-replayed" not in placed.headers, placed.text
    replayed = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert (replayed.status_code, replayed.json()) == (201, placed.json())
    assert replayed.headers["idempotent-replayed"] == "true"


def test_a_403_lets_go_of_the_key_once_the_caller_may_write(api: Api) -> None:
    """A service offered before its creator profile was made (403), then offered again after it."""
    user = api.verified_user()
    headers = keyed(user)
    category = api.client.get("/api/v1/categories/").json()["results"][0]["id"]
    body = {"title": "Обзор", "description": "Обзор", "category_id": category, "base_price": 900, "delivery_time": 5}
    forbidden = api.client.post("/api/v1/services/", headers=headers, json=body)
    assert forbidden.status_code == 403, forbidden.text
    profile_body = {"specialization": "Видео"}
    profile = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=profile_body)
    assert profile.status_code == 201, profile.text
    offered = api.client.post("/api/v1/services/", headers=headers, json=body)
    assert offered.status_code == 201 and "idempotent-replayed" not in offered.headers, offered.text


def test_a_404_lets_go_of_the_key(api: Api) -> None:
    deal = a_deal(api)
    headers = keyed(deal.creator)
    missing = api.client.post("/api/v1/orders/999999999/accept/", headers=headers, json={})
    assert missing.status_code == 404, missing.text
    order = place(api, deal)["id"]
    accepted = api.client.post(f"/api/v1/orders/{order}/accept/", headers=headers, json={})
    assert accepted.status_code == 200 and "idempotent-replayed" not in accepted.headers, accepted.text


def test_a_401_never_claims_the_key(api: Api, clock: MovableClock) -> None:
    """The access token expired on the way (401); the client refreshes it and sends the same request
    with the same key: it runs."""
    deal = a_deal(api)
    key = uuid.uuid4().hex
    clock.advance(timedelta(seconds=api.settings.access_token_ttl + 1))
    expired = api.client.post("/api/v1/orders/", headers=keyed(deal.buyer, key), json=order_body(deal))
    assert expired.status_code == 401, expired.text
    refreshed = api.client.post("/api/auth/token/refresh/", json={"refresh": deal.buyer["refresh"]})
    assert refreshed.status_code == 200, refreshed.text
    headers = {"Authorization": f"Bearer {refreshed.json()['access']}", "Idempotency-Key": key}
    placed = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert placed.status_code == 201 and "idempotent-replayed" not in placed.headers, placed.text


def test_an_unverified_callers_403_never_claims_the_key(api: Api) -> None:
    user = api.user()
    headers = keyed(user)
    before = api.client.post("/api/v1/conversations/", headers=headers, json={"recipient_id": api.user()["id"]})
    assert before.status_code == 403, before.text
    token = mailed_token(api.settings, user["email"])
    assert api.client.post("/api/auth/verify-email/", json={"token": token}).status_code == 200
    after = api.client.post("/api/v1/conversations/", headers=headers, json={"recipient_id": api.user()["id"]})
    assert after.status_code == 201 and "idempotent-replayed" not in after.headers, after.text


def test_a_409_is_kept_even_once_the_state_would_allow_the_command(api: Api) -> None:
    """A cancel refused on a delivered order (409) stays refused for its key after a revision brought
    the order back in progress, where a cancel is allowed: the command was meant for the status the
    buyer saw, and a retry of it is the same command."""
    deal = a_deal(api, allows_modifications=True)
    order = order_in(api, deal, "delivered")
    headers = keyed(deal.buyer)
    url = f"/api/v1/orders/{order}/cancel/"
    refused_cancel = api.client.post(url, headers=headers, json={"reason": "Передумал"})
    assert (refused_cancel.status_code, refused_cancel.json()["status"]) == (409, "delivered"), refused_cancel.text
    act(api, deal.buyer, order, "request-revision", {"message": "Переделайте"})
    retry = api.client.post(url, headers=headers, json={"reason": "Передумал"})
    assert (retry.status_code, retry.headers["idempotent-replayed"]) == (409, "true"), retry.text
    assert retry.json() == refused_cancel.json()
    assert api.client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"]).json()["status"] == "in_progress"
    other = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert (other.status_code, other.json()) == (422, KEY_REUSED)


def test_a_request_without_a_token_is_401_whatever_its_key(api: Api) -> None:
    """The caller is checked before the body and the key (DESIGN: 401 first), on the writes an
    unverified user may make too, where no verification check came first to answer 401."""
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        for key in ("", "k" * 256):
            keyed_only = headers | {"Idempotency-Key": key}
            response = api.client.post("/api/v1/notifications/mark-all-read/", headers=keyed_only)
            assert response.status_code == 401, response.text
