"""Notifications over HTTP: who is told what by every order event and chat message; read marks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from commands.scheduler import AutoCompleter
from readmodels.orders import due_for_auto_completion
from readmodels.waiting import wait_for
from tests.conftest import Api, new_client
from tests.orders_world import a_deal, act, order_in, place
from ugc.clock import MovableClock
from ugc.config import Settings

NOTIFICATION_KEYS = {"id", "type", "message", "data", "created_at", "is_read"}


def inbox(api: Api, who: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = api.client.get("/api/v1/notifications/", headers=who["headers"], params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counts_match_rows(api: Api, who: dict[str, Any]) -> tuple[int, int]:
    """The page counts (all, unread) of `who`, checked against the rows each filter lists."""
    rows = inbox(api, who, page_size=100)
    assert rows["count"] == len(rows["results"]) < 100
    unread = sum(not n["is_read"] for n in rows["results"])
    assert inbox(api, who, read="false", page_size=1)["count"] == unread
    assert inbox(api, who, read="true", page_size=1)["count"] == rows["count"] - unread
    return rows["count"], unread


def kinds(api: Api, who: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the user's notifications, oldest first."""
    return [(n["type"], n["data"]) for n in reversed(inbox(api, who, page_size=100)["results"])]


def test_every_step_of_an_order_tells_the_other_party(api: Api) -> None:
    deal = a_deal(api)
    creator, buyer = deal.creator, deal.buyer
    order = place(api, deal)["id"]
    patched = api.client.patch(
        f"/api/v1/orders/{order}/", headers=buyer["headers"], json={"requirements": "Другие требования"}
    )
    assert patched.status_code == 200, patched.text
    act(api, creator, order, "accept")
    first = act(api, creator, order, "deliveries", {"message": "Готово"}, expect=201)["id"]
    act(api, buyer, order, "request-revision", {"message": "Поправьте"})
    second = act(api, creator, order, "deliveries", {"message": "Исправил"}, expect=201)["id"]
    act(api, buyer, order, "approve")
    review = act(api, buyer, order, "reviews", {"rating": 5, "content": "Отлично"}, expect=201)["id"]

    about = {"order_id": order}
    assert kinds(api, creator) == [
        ("new_order", about),
        ("order_updated", about),
        ("revision_requested", about),
        ("order_completed", about),
        ("new_review", about | {"review_id": review}),
    ]
    assert kinds(api, buyer) == [
        ("order_accepted", about),
        ("order_delivered", about | {"delivery_id": first}),
        ("order_delivered", about | {"delivery_id": second}),
    ]
    newest = inbox(api, creator)["results"][0]
    assert set(newest) == NOTIFICATION_KEYS
    assert newest["message"] == "Покупатель оставил отзыв о вашей работе." and newest["is_read"] is False
    assert newest["created_at"].endswith("Z")
    assert inbox(api, creator)["results"][-1]["message"] == "У вас новый заказ!"


@pytest.mark.parametrize(
    ("canceller", "told", "text"), [("buyer", "creator", "Покупатель"), ("creator", "buyer", "Креатор")]
)
def test_a_cancellation_tells_the_other_party(api: Api, canceller: str, told: str, text: str) -> None:
    deal = a_deal(api)
    order = order_in(api, deal, "in_progress")
    act(api, getattr(deal, canceller), order, "cancel", {"reason": "Не договорились"})
    latest = inbox(api, getattr(deal, told))["results"][0]
    assert (latest["type"], latest["data"], latest["message"]) == (
        "order_cancelled",
        {"order_id": order},
        f"{text} отменил заказ.",
    )
    assert "order_cancelled" not in [t for t, _ in kinds(api, getattr(deal, canceller))]


def test_an_automatic_completion_tells_the_creator(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = order_in(api, deal, "delivered")
        services = client.app.state.services  # type: ignore[attr-defined]
        clock.advance(timedelta(days=settings.auto_complete_days, minutes=1))
        completer = AutoCompleter(services.orders, clock, lambda before: due_for_auto_completion(services.db, before))
        assert completer.run_once() == 1
        head = services.orders.app.recorder.max_notification_id()
        wait_for(services.db, services.progress, {"orders": head}, 5.0)
        creator = deal.creator | {
            "headers": {"Authorization": f"Bearer {api.login(deal.creator['username'])['access']}"}
        }
        latest = inbox(api, creator)["results"][0]
        assert (latest["type"], latest["data"]) == ("order_completed", {"order_id": order})
        assert latest["message"] == "Заказ завершен автоматически: срок проверки истек."


def test_a_chat_message_tells_its_recipient_only(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = api.client.post(
        "/api/v1/conversations/", headers=anna["headers"], json={"recipient_id": boris["id"]}
    ).json()["id"]
    sent = api.client.post(
        f"/api/v1/conversations/{conversation}/messages/", headers=anna["headers"], json={"message": "Привет"}
    ).json()
    assert inbox(api, anna)["count"] == 0
    told = inbox(api, boris)["results"]
    assert len(told) == 1
    assert told[0]["type"] == "new_message"
    assert told[0]["data"] == {"conversation_id": conversation, "message_id": sent["id"]}
    assert told[0]["message"] == f"Новое сообщение от {anna['username']}."


def test_the_read_filter_and_marking_one_as_read(api: Api) -> None:
    deal = a_deal(api)
    orders = [place(api, deal)["id"] for _ in range(3)]
    creator = deal.creator
    listed = inbox(api, creator)
    assert listed["count"] == 3 and [n["data"]["order_id"] for n in listed["results"]] == orders[::-1]
    target = listed["results"][1]["id"]
    marked = api.client.post(f"/api/v1/notifications/{target}/mark-as-read/", headers=creator["headers"])
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"id": target, "is_read": True}
    again = api.client.post(f"/api/v1/notifications/{target}/mark-as-read/", headers=creator["headers"], json={})
    assert again.status_code == 200 and again.json() == {"id": target, "is_read": True}
    assert [n["id"] for n in inbox(api, creator, read="true")["results"]] == [target]
    unread = inbox(api, creator, read="false")
    assert unread["count"] == 2 and target not in [n["id"] for n in unread["results"]]
    assert inbox(api, creator, read="TRUE")["count"] == 1
    bad = api.client.get("/api/v1/notifications/", headers=creator["headers"], params={"read": "maybe"})
    assert bad.status_code == 422 and "read" in bad.json()["fields"]
    page = inbox(api, creator, page_size=2, page=2)
    assert page["count"] == 3 and [n["data"]["order_id"] for n in page["results"]] == [orders[0]]


def test_the_counts_follow_new_notifications_and_every_kind_of_mark(api: Api) -> None:
    deal = a_deal(api)
    creator = deal.creator
    assert counts_match_rows(api, creator) == (0, 0)
    orders = [place(api, deal)["id"] for _ in range(4)]
    assert counts_match_rows(api, creator) == (4, 4)
    first, second = [n["id"] for n in inbox(api, creator)["results"][:2]]
    for target in (first, first, second):  # once more: counted once
        api.client.post(f"/api/v1/notifications/{target}/mark-as-read/", headers=creator["headers"])
    assert counts_match_rows(api, creator) == (4, 2)
    act(api, deal.creator, orders[0], "accept")
    assert counts_match_rows(api, deal.buyer) == (1, 1)
    marked = api.client.post("/api/v1/notifications/mark-all-read/", headers=creator["headers"])
    assert marked.json() == {"unread_count": 0}
    assert counts_match_rows(api, creator) == (4, 0)
    covered = inbox(api, creator)["results"][-1]["id"]  # read by the mark of all alone
    again = api.client.post(f"/api/v1/notifications/{covered}/mark-as-read/", headers=creator["headers"])
    assert again.json() == {"id": covered, "is_read": True}
    assert counts_match_rows(api, creator) == (4, 0)
    place(api, deal)
    place(api, deal)
    assert counts_match_rows(api, creator) == (6, 2)
    newest = inbox(api, creator, read="false")["results"][0]["id"]
    api.client.post(f"/api/v1/notifications/{newest}/mark-as-read/", headers=creator["headers"])
    assert counts_match_rows(api, creator) == (6, 1)
    assert counts_match_rows(api, deal.buyer) == (1, 1)  # the creator's marks are theirs
    api.client.post("/api/v1/notifications/mark-all-read/", headers=creator["headers"])
    assert counts_match_rows(api, creator) == (6, 0)


def test_nobody_marks_someone_elses_notification(api: Api) -> None:
    deal = a_deal(api)
    place(api, deal)
    theirs = inbox(api, deal.creator)["results"][0]["id"]
    for who in (deal.buyer, api.verified_user()):
        response = api.client.post(f"/api/v1/notifications/{theirs}/mark-as-read/", headers=who["headers"])
        assert response.status_code == 404 and response.json() == {"detail": "Страница не найдена."}
    for unknown in (1, 8, theirs + 8 * 10**6, 999999999999):
        response = api.client.post(f"/api/v1/notifications/{unknown}/mark-as-read/", headers=deal.creator["headers"])
        assert response.status_code == 404, unknown
    assert inbox(api, deal.creator, read="false")["count"] == 1


def test_marking_all_as_read(api: Api) -> None:
    deal = a_deal(api)
    for _ in range(3):
        place(api, deal)
    creator = deal.creator
    response = api.client.post("/api/v1/notifications/mark-all-read/", headers=creator["headers"])
    assert response.status_code == 200, response.text
    assert response.json() == {"unread_count": 0}
    assert inbox(api, creator, read="false")["count"] == 0
    assert inbox(api, creator, read="true")["count"] == 3
    place(api, deal, delivery_date=(date.today() + timedelta(days=3)).isoformat())
    fresh = inbox(api, creator, read="false")
    assert fresh["count"] == 1 and fresh["results"][0]["is_read"] is False


def test_marking_again_with_nothing_new_stores_nothing(api: Api) -> None:
    """Each mark is stored in the messaging log, which it marks: a client looping on "mark read" used
    to store an event at every call (4,000 calls, 4,000 events)."""
    deal = a_deal(api)
    place(api, deal)
    creator, buyer = deal.creator["headers"], deal.buyer["headers"]
    chat = api.client.post("/api/v1/conversations/", headers=buyer, json={"recipient_id": deal.creator["id"]}).json()
    api.client.post(f"/api/v1/conversations/{chat['id']}/messages/", headers=buyer, json={"message": "Здравствуйте"})
    latest = inbox(api, deal.creator)["results"][0]["id"]
    marks = [
        ("/api/v1/notifications/mark-all-read/", creator),
        (f"/api/v1/notifications/{latest}/mark-as-read/", creator),
        (f"/api/v1/conversations/{chat['id']}/mark-as-read/", creator),
    ]
    messaging = api.client.app.state.services.messaging.app  # type: ignore[attr-defined]
    for path, headers in marks:
        assert api.client.post(path, headers=headers).status_code == 200, path
    head = messaging.recorder.max_notification_id()
    for _ in range(3):
        for path, headers in marks:
            assert api.client.post(path, headers=headers).status_code == 200, path
    assert messaging.recorder.max_notification_id() == head
    assert inbox(api, deal.creator, read="false")["count"] == 0


def test_notifications_need_a_token(api: Api) -> None:
    for method, path in [
        ("GET", "/api/v1/notifications/"),
        ("POST", "/api/v1/notifications/8/mark-as-read/"),
        ("POST", "/api/v1/notifications/mark-all-read/"),
    ]:
        response = api.client.request(method, path)
        assert response.status_code == 401, (method, path)
