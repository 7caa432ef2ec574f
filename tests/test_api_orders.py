"""Orders over HTTP: shapes, who may do what from which state, retries, history and time travel."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from readmodels import orders as read
from readmodels.pages import PageRequest
from tests.conftest import BAD_BODY_IDS, Api, new_client, refused_id, version_of
from tests.orders_world import Deal, a_deal, act, order_in, place
from tests.plans import relations_read
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.events import operator_actor
from ugc.wiring import migrate

ORDER_KEYS = {
    "id",
    "service",
    "buyer",
    "status",
    "requirements",
    "price",
    "total_price",
    "delivery_date",
    "created_at",
    "updated_at",
    "selected_options",
    "is_late",
    "cancellation_reason",
    "delivered_at",
    "completed_at",
    "cancelled_at",
}


@pytest.fixture
def deal(api: Api) -> Deal:
    return a_deal(api)


def test_placing_fixes_the_terms_of_the_service(api: Api, deal: Deal) -> None:
    response = api.client.post(
        "/api/v1/orders/",
        headers=deal.buyer["headers"],
        json={
            "service_id": deal.service["id"],
            "requirements": "Снять распаковку",
            "delivery_date": (date.today() + timedelta(days=5)).isoformat(),
            "selected_option_ids": [o["id"] for o in deal.service["options"]],
        },
    )
    assert response.status_code == 201
    order = response.json()
    assert set(order) == ORDER_KEYS
    assert version_of(response) == 1
    assert order["status"] == "pending" and order["is_late"] is False
    assert order["price"] == 1000 and order["total_price"] == 1350.5
    assert order["buyer"] == {"id": deal.buyer["id"], "username": deal.buyer["username"]}
    assert order["service"]["id"] == deal.service["id"] and order["service"]["title"] == deal.service["title"]
    assert [o["name"] for o in order["selected_options"]] == ["Срочно", "Субтитры"]
    # The answer is rendered from the appended order; the read model shows exactly the same.
    shown = api.client.get(f"/api/v1/orders/{order['id']}/", headers=deal.buyer["headers"])
    assert shown.json() == order and shown.headers["etag"] == response.headers["etag"]
    # Later edits of the service never change the order.
    edit = api.client.patch(
        f"/api/v1/services/{deal.service['id']}/",
        headers=deal.creator["headers"],
        json={"base_price": 5000, "title": "Новое"},
    )
    assert edit.status_code == 200
    again = api.client.get(f"/api/v1/orders/{order['id']}/", headers=deal.buyer["headers"]).json()
    assert again["price"] == 1000 and again["service"]["title"] == deal.service["title"]


def test_placing_without_options(api: Api, deal: Deal) -> None:
    order = place(api, deal, selected_option_ids=[])
    assert order["total_price"] == order["price"] == 1000 and order["selected_options"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"service_id": 999999}, "service_id"),
        ({"selected_option_ids": [999999]}, "selected_option_ids"),
        ({"delivery_date": "2000-01-01"}, "delivery_date"),
        ({"delivery_date": "not a date"}, "delivery_date"),
        ({"service_id": "x"}, "service_id"),
        ({"requirements": "r" * 5001}, "requirements"),
    ],
)
def test_placing_refuses_bad_terms(api: Api, deal: Deal, change: dict[str, Any], field: str) -> None:
    body = {"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()} | change
    response = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


def test_an_option_of_another_service_is_refused(api: Api, deal: Deal) -> None:
    other = api.service(deal.creator, title="Другой сервис")
    response = api.client.post(
        "/api/v1/orders/",
        headers=deal.buyer["headers"],
        json={
            "service_id": deal.service["id"],
            "delivery_date": (date.today() + timedelta(days=3)).isoformat(),
            "selected_option_ids": [other["options"][0]["id"]],
        },
    )
    assert response.status_code == 422 and "selected_option_ids" in response.json()["fields"]


def test_nobody_orders_their_own_service(api: Api, deal: Deal) -> None:
    response = api.client.post(
        "/api/v1/orders/",
        headers=deal.creator["headers"],
        json={"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()},
    )
    assert response.status_code == 422 and "service_id" in response.json()["fields"]


def test_an_inactive_service_cannot_be_ordered(api: Api, deal: Deal) -> None:
    assert (
        api.client.delete(f"/api/v1/services/{deal.service['id']}/", headers=deal.creator["headers"]).status_code == 204
    )
    response = api.client.post(
        "/api/v1/orders/",
        headers=deal.buyer["headers"],
        json={"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()},
    )
    assert response.status_code == 422 and "service_id" in response.json()["fields"]


def test_an_unverified_user_cannot_order(api: Api, deal: Deal) -> None:
    unverified = api.user()
    response = api.client.post(
        "/api/v1/orders/",
        headers=unverified["headers"],
        json={"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()},
    )
    assert response.status_code == 403


def test_a_user_on_both_sides_pages_through_one_newest_first_list(api: Api) -> None:
    """Pages cut across the buyer and creator branches; totals follow every change of status."""
    both = api.creator()
    other = a_deal(api)
    as_buyer = Deal(creator=other.creator, buyer=both, service=other.service)
    as_creator = Deal(creator=both, buyer=api.verified_user(), service=api.service(both))
    placed = [
        order_in(api, as_buyer, "pending"),
        order_in(api, as_creator, "in_progress"),
        order_in(api, as_buyer, "delivered"),
        order_in(api, as_creator, "cancelled"),
        order_in(api, as_buyer, "completed"),
    ]
    pages = [api.client.get(f"/api/v1/orders/?page_size=2&page={n}", headers=both["headers"]).json() for n in (1, 2, 3)]
    assert [o["id"] for p in pages for o in p["results"]] == placed[::-1]
    assert {p["count"] for p in pages} == {5}

    def count(query: str) -> int:
        answer = api.client.get(f"/api/v1/orders/?{query}", headers=both["headers"])
        assert answer.status_code == 200, answer.text
        total: int = answer.json()["count"]
        assert total == len(answer.json()["results"])
        return total

    assert (count("role=buyer"), count("role=creator")) == (3, 2)
    assert (count("status=pending"), count("status=in_progress"), count("status=completed")) == (1, 1, 1)
    act(api, both, placed[1], "cancel", {"reason": "Не успею"})
    assert (count("status=in_progress"), count("status=cancelled"), count("role=creator&status=cancelled")) == (
        0,
        2,
        2,
    )
    assert count("role=buyer&status=cancelled") == 0


def test_order_totals_are_filled_in_for_a_database_from_before_they_were_kept(api: Api, deal: Deal) -> None:
    order_in(api, deal, "delivered")
    order_in(api, deal, "pending")
    db = api.client.app.state.services.db  # type: ignore[attr-defined]
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM order_counts")
    migrate(db)
    listed = api.client.get("/api/v1/orders/?role=creator", headers=deal.creator["headers"]).json()
    assert listed["count"] == 2
    delivered = api.client.get("/api/v1/orders/?status=delivered", headers=deal.buyer["headers"]).json()
    assert delivered["count"] == 1


def test_a_creators_review_total_is_kept_not_counted(api: Api, deal: Deal) -> None:
    """Each review adds one to its creator's row of `review_counts`, with the review: the list's total
    reads that row, not the creator's reviews (2,016 of them: a sequential scan, 47 buffers). A
    database from before the table gets it filled at migration."""
    for rating in (5, 3):
        order = order_in(api, deal, "completed")
        act(api, deal.buyer, order, "reviews", {"content": "Отзыв", "rating": rating}, expect=201)
    order_in(api, deal, "completed")
    profile = deal.creator["profile"]["id"]
    assert api.client.get(f"/api/v1/creators/{profile}/reviews/").json()["count"] == 2
    unreviewed = api.creator()["profile"]["id"]
    assert api.client.get(f"/api/v1/creators/{unreviewed}/reviews/").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    db = api.client.app.state.services.db  # type: ignore[attr-defined]
    assert relations_read(db, *read.list_reviews(profile, PageRequest(1, 20)).count) == {"review_counts"}
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM review_counts")
    migrate(db)
    assert api.client.get(f"/api/v1/creators/{profile}/reviews/").json()["count"] == 2


def test_orders_need_a_token(api: Api) -> None:
    assert api.client.get("/api/v1/orders/").status_code == 401
    assert api.client.post("/api/v1/orders/", json={}).status_code == 401


def test_each_party_lists_its_orders(api: Api, deal: Deal) -> None:
    first = place(api, deal)["id"]
    second = order_in(api, deal, "in_progress")
    as_buyer = api.client.get("/api/v1/orders/", headers=deal.buyer["headers"]).json()
    assert [o["id"] for o in as_buyer["results"]] == [second, first] and as_buyer["count"] == 2
    assert api.client.get("/api/v1/orders/?role=creator", headers=deal.buyer["headers"]).json()["count"] == 0
    as_creator = api.client.get("/api/v1/orders/?role=creator", headers=deal.creator["headers"]).json()
    assert [o["id"] for o in as_creator["results"]] == [second, first]
    pending = api.client.get("/api/v1/orders/?status=pending", headers=deal.creator["headers"]).json()
    assert [o["id"] for o in pending["results"]] == [first]
    stranger = api.user()
    assert api.client.get("/api/v1/orders/", headers=stranger["headers"]).json()["count"] == 0
    assert api.client.get("/api/v1/orders/?status=lost", headers=deal.buyer["headers"]).status_code == 422
    assert api.client.get("/api/v1/orders/?role=admin", headers=deal.buyer["headers"]).status_code == 422
    paged = api.client.get("/api/v1/orders/?page_size=1&page=2", headers=deal.buyer["headers"]).json()
    assert [o["id"] for o in paged["results"]] == [first] and paged["next"] is None
    # Empty or blank (a form's empty field), as every other filter: absent, not a 422.
    for blank in ("status=", "role=", "status=%20", "role=%20&status=%20"):
        answer = api.client.get(f"/api/v1/orders/?{blank}", headers=deal.buyer["headers"])
        assert (answer.status_code, answer.json()) == (200, as_buyer), blank


def test_an_order_is_visible_to_its_parties_and_auditors_only(api: Api, deal: Deal) -> None:
    order = place(api, deal)["id"]
    for party in (deal.buyer, deal.creator):
        response = api.client.get(f"/api/v1/orders/{order}/", headers=party["headers"])
        assert response.status_code == 200 and version_of(response) == 1
    stranger = api.user()
    assert api.client.get(f"/api/v1/orders/{order}/", headers=stranger["headers"]).status_code == 404
    assert api.client.get(f"/api/v1/orders/{order}/history/", headers=stranger["headers"]).status_code == 404
    assert api.client.get("/api/v1/orders/987654/", headers=deal.buyer["headers"]).status_code == 404
    auditor = grant(api, api.verified_user(), "auditor")
    assert api.client.get(f"/api/v1/orders/{order}/", headers=auditor["headers"]).status_code == 200
    assert api.client.get(f"/api/v1/orders/{order}/history/", headers=auditor["headers"]).status_code == 200
    # Auditors change nothing; they see the order, so the refusal is a 403.
    for action, body in (("accept", None), ("cancel", {"reason": "Аудит"}), ("approve", None)):
        assert (
            api.client.post(f"/api/v1/orders/{order}/{action}/", headers=auditor["headers"], json=body).status_code
            == 403
        )
    assert api.client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"]).json()["status"] == "pending"


def grant(api: Api, user: dict[str, Any], role: str) -> dict[str, Any]:
    services = api.client.app.state.services  # type: ignore[attr-defined]
    positions = services.accounts.grant_role(user["username"], role, operator_actor("test"))
    services.progress.nudge()
    from readmodels.waiting import wait_for

    wait_for(services.db, services.progress, positions, 5.0)
    return user


def test_the_lifecycle_answers_the_spec_shapes(api: Api, deal: Deal) -> None:
    order = place(api, deal)["id"]
    accepted = act(api, deal.creator, order, "accept")
    assert set(accepted) == {"id", "status", "updated_at"} and accepted["status"] == "in_progress"
    delivery = act(api, deal.creator, order, "deliveries", {"message": "Ссылка: https://example.com/v"}, expect=201)
    assert set(delivery) == {"id", "order_id", "message", "files", "created_at"} and delivery["files"] == []
    revision = act(api, deal.buyer, order, "request-revision", {"message": "Добавьте субтитры"})
    assert revision["status"] == "in_progress"
    act(api, deal.creator, order, "deliveries", {"message": "Исправлено", "file_ids": []}, expect=201)
    approved = act(api, deal.buyer, order, "approve")
    assert set(approved) == {"id", "status", "completed_at"} and approved["status"] == "completed"
    review = act(api, deal.buyer, order, "reviews", {"content": "Отлично!", "rating": 5}, expect=201)
    assert review["rating"] == 5 and review["reviewer"]["username"] == deal.buyer["username"]
    assert review["service_title"] == deal.service["title"]
    deliveries = api.client.get(f"/api/v1/orders/{order}/deliveries/", headers=deal.buyer["headers"]).json()
    assert deliveries["count"] == 2 and deliveries["next"] is None and deliveries["previous"] is None
    assert [d["message"] for d in deliveries["results"]] == ["Ссылка: https://example.com/v", "Исправлено"]
    first = api.client.get(f"/api/v1/orders/{order}/deliveries/?page_size=1", headers=deal.buyer["headers"]).json()
    assert [d["message"] for d in first["results"]] == ["Ссылка: https://example.com/v"]
    assert first["next"] == f"{api.settings.public_url}/api/v1/orders/{order}/deliveries/?page_size=1&page=2"
    second = api.client.get(first["next"], headers=deal.buyer["headers"]).json()
    assert [d["message"] for d in second["results"]] == ["Исправлено"] and second["previous"] is not None
    reviews = api.client.get(f"/api/v1/creators/{deal.creator['profile']['id']}/reviews/").json()
    assert reviews["count"] == 1 and reviews["results"][0]["content"] == "Отлично!"
    profile = api.client.get(f"/api/v1/creators/{deal.creator['profile']['id']}/").json()
    assert profile["rating"] == 5 and profile["completed_orders"] == 1


def test_each_command_answers_what_the_read_model_shows_right_after(api: Api, deal: Deal) -> None:
    """Order commands answer from the order as appended, without reading it back: the same fields."""
    order = place(api, deal)["id"]

    def shown() -> dict[str, Any]:
        return dict(api.client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"]).json())

    edit = api.client.patch(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"requirements": "Иначе"})
    assert edit.status_code == 200 and edit.json() == shown() and version_of(edit) == 2
    accepted = act(api, deal.creator, order, "accept")
    assert accepted == {key: shown()[key] for key in ("id", "status", "updated_at")}
    file = api.client.post(
        "/api/v1/files/upload/", headers=deal.creator["headers"], files={"file": ("a.txt", b"abc", "text/plain")}
    ).json()
    delivery = act(api, deal.creator, order, "deliveries", {"message": "Готово", "file_ids": [file["id"]]}, expect=201)
    listed = api.client.get(f"/api/v1/orders/{order}/deliveries/", headers=deal.buyer["headers"]).json()
    assert listed["results"] == [delivery] and delivery["files"][0]["name"] == "a.txt"
    approved = act(api, deal.buyer, order, "approve")
    assert approved == {key: shown()[key] for key in ("id", "status", "completed_at")}
    review = act(api, deal.buyer, order, "reviews", {"content": "Хорошо", "rating": 4}, expect=201)
    reviews = api.client.get(f"/api/v1/creators/{deal.creator['profile']['id']}/reviews/").json()
    assert reviews["results"] == [review]


def test_the_reviews_of_a_creator_who_does_not_exist_are_404_as_the_creator_is(api: Api) -> None:
    """They answered 200 with an empty list, though the creator's own page is 404."""
    for missing in (999999, 0):
        assert api.client.get(f"/api/v1/creators/{missing}/").status_code == 404
        answer = api.client.get(f"/api/v1/creators/{missing}/reviews/")
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND)


def test_an_outsider_learns_nothing_of_an_order_from_a_delivery_with_files(api: Api, deal: Deal) -> None:
    order = order_in(api, deal, "in_progress")
    stranger = api.verified_user()
    for file_ids in ([], [999999]):
        response = api.client.post(
            f"/api/v1/orders/{order}/deliveries/",
            headers=stranger["headers"],
            json={"message": "x", "file_ids": file_ids},
        )
        assert response.status_code == 404, response.text


def test_ratings_are_means_with_two_decimals(api: Api) -> None:
    creator = api.creator()
    service = api.service(creator)
    for rating in (5, 4, 4):
        deal = Deal(creator=creator, buyer=api.verified_user(), service=service)
        order = order_in(api, deal, "completed")
        act(api, deal.buyer, order, "reviews", {"content": "", "rating": rating}, expect=201)
    profile = api.client.get(f"/api/v1/creators/{creator['profile']['id']}/").json()
    assert Decimal(str(profile["rating"])) == Decimal("4.33") and profile["completed_orders"] == 3
    # The listing shows the same rating on the creator's services, and orders by it.
    listed = api.client.get(f"/api/v1/services/{service['id']}/").json()
    assert Decimal(str(listed["creator"]["rating"])) == Decimal("4.33")
    # The two creator shapes agree: a service's is an order's plus the rating.
    ordered = api.client.get("/api/v1/orders/", headers=deal.buyer["headers"]).json()["results"][0]["service"]
    assert {k: v for k, v in listed["creator"].items() if k != "rating"} == ordered["creator"]
    by_rating = api.client.get("/api/v1/services/", params={"ordering": "-rating", "page_size": 100}).json()
    assert by_rating["results"][0]["creator"]["rating"] == max(r["creator"]["rating"] for r in by_rating["results"])


def test_a_listing_page_read_before_a_review_shows_the_new_rating_after_it(api: Api, deal: Deal) -> None:
    """The listing remembers pages per state; a review moves the state, so nothing stale is served."""
    query = {"creator": deal.creator["profile"]["id"]}

    def listed_rating() -> object:
        page = api.client.get("/api/v1/services/", params=query).json()
        return page["results"][0]["creator"]["rating"]

    order = order_in(api, deal, "completed")
    assert listed_rating() == listed_rating() == 0
    act(api, deal.buyer, order, "reviews", {"content": "Хорошо", "rating": 4}, expect=201)
    assert listed_rating() == 4


def test_cancel_needs_a_reason_and_answers_its_shape(api: Api, deal: Deal) -> None:
    order = place(api, deal)["id"]
    assert api.client.post(f"/api/v1/orders/{order}/cancel/", headers=deal.buyer["headers"], json={}).status_code == 422
    assert (
        api.client.post(
            f"/api/v1/orders/{order}/cancel/", headers=deal.buyer["headers"], json={"reason": "  "}
        ).status_code
        == 422
    )
    cancelled = act(api, deal.creator, order, "cancel", {"reason": "Не успеваю"})
    assert set(cancelled) == {"id", "status", "cancellation_reason", "cancelled_at"}
    assert cancelled["status"] == "cancelled" and cancelled["cancellation_reason"] == "Не успеваю"


def test_wrong_party_is_403_and_wrong_state_is_409_with_the_status(api: Api, deal: Deal) -> None:
    order = place(api, deal)["id"]
    assert api.client.post(f"/api/v1/orders/{order}/accept/", headers=deal.buyer["headers"]).status_code == 403
    assert api.client.post(f"/api/v1/orders/{order}/approve/", headers=deal.creator["headers"]).status_code == 403
    wrong = api.client.post(f"/api/v1/orders/{order}/approve/", headers=deal.buyer["headers"])
    assert wrong.status_code == 409 and wrong.json()["status"] == "pending" and "error" in wrong.json()
    stranger = api.verified_user()
    assert api.client.post(f"/api/v1/orders/{order}/accept/", headers=stranger["headers"]).status_code == 404
    done = order_in(api, deal, "completed")
    again = api.client.post(f"/api/v1/orders/{done}/cancel/", headers=deal.buyer["headers"], json={"reason": "Поздно"})
    assert again.status_code == 409 and again.json()["status"] == "completed"


def test_a_second_review_is_409(api: Api, deal: Deal) -> None:
    order = order_in(api, deal, "completed")
    act(api, deal.buyer, order, "reviews", {"content": "Хорошо", "rating": 4}, expect=201)
    second = api.client.post(
        f"/api/v1/orders/{order}/reviews/", headers=deal.buyer["headers"], json={"content": "", "rating": 1}
    )
    assert second.status_code == 409
    for rating in (0, 6, "five"):
        bad = api.client.post(
            f"/api/v1/orders/{order}/reviews/", headers=deal.buyer["headers"], json={"rating": rating}
        )
        assert bad.status_code == 422


def test_revision_is_403_when_the_service_allows_no_modifications(api: Api) -> None:
    deal = a_deal(api, allows_modifications=False)
    order = order_in(api, deal, "delivered")
    assert (
        api.client.post(f"/api/v1/orders/{order}/request-revision/", headers=deal.buyer["headers"]).status_code == 403
    )


def test_the_buyer_updates_a_pending_order(api: Api, deal: Deal) -> None:
    order = place(api, deal)["id"]
    new_date = (date.today() + timedelta(days=20)).isoformat()
    response = api.client.patch(
        f"/api/v1/orders/{order}/",
        headers=deal.buyer["headers"],
        json={"requirements": "Другие требования", "delivery_date": new_date},
    )
    assert response.status_code == 200
    assert response.json()["requirements"] == "Другие требования" and response.json()["delivery_date"] == new_date
    assert (
        api.client.patch(
            f"/api/v1/orders/{order}/", headers=deal.creator["headers"], json={"requirements": "x"}
        ).status_code
        == 403
    )
    assert (
        api.client.patch(
            f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"delivery_date": "2001-01-01"}
        ).status_code
        == 422
    )
    act(api, deal.creator, order, "accept")
    late = api.client.patch(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"requirements": "Ещё"})
    assert late.status_code == 409 and late.json()["status"] == "in_progress"


def test_a_stale_if_match_is_412_and_changes_nothing(api: Api, deal: Deal) -> None:
    order = place(api, deal)["id"]
    etag = api.client.get(f"/api/v1/orders/{order}/", headers=deal.creator["headers"]).headers["etag"]
    api.client.patch(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"requirements": "Изменено"})
    stale = api.client.post(f"/api/v1/orders/{order}/accept/", headers=deal.creator["headers"] | {"If-Match": etag})
    assert stale.status_code == 412 and stale.json()["version"] == 2
    assert api.client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"]).json()["status"] == "pending"
    fresh = api.client.post(f"/api/v1/orders/{order}/accept/", headers=deal.creator["headers"] | {"If-Match": '"2"'})
    assert fresh.status_code == 200 and version_of(fresh) == 3


NOT_FOUND = {"detail": "Страница не найдена."}
FORBIDDEN = {"detail": "У вас недостаточно прав для выполнения данного действия."}
# Every command on an order: its method, its path under the order's, a body it would take.
ORDER_COMMANDS = [
    ("PATCH", "", {"requirements": "Чужие требования"}),
    ("POST", "accept/", {}),
    ("POST", "request-revision/", {"message": "Переделать"}),
    ("POST", "approve/", {}),
    ("POST", "cancel/", {"reason": "Чужая отмена"}),
    ("POST", "deliveries/", {"message": "Чужая работа"}),
    ("POST", "reviews/", {"rating": 1, "content": "Чужой отзыв"}),
]
# Whatever version a caller names: stale, current, none readable, any.
IF_MATCHES = [None, '"77"', '"1"', '"abc"', "*"]


def _command(api: Api, who: dict[str, Any], order: int, command: tuple[str, str, Any], if_match: str | None) -> Any:
    method, path, body = command
    headers = who["headers"] | ({} if if_match is None else {"If-Match": if_match})
    return api.client.request(method, f"/api/v1/orders/{order}/{path}", headers=headers, json=body)


def test_an_outsiders_if_match_tells_nothing_of_the_order(api: Api, deal: Deal) -> None:
    """404 on every command whatever version the outsider names: a 412 would tell that the order
    exists and how many events it has (the version and its ETag)."""
    order = place(api, deal)["id"]
    stranger = api.verified_user()
    for command in ORDER_COMMANDS:
        for if_match in IF_MATCHES:
            refused = _command(api, stranger, order, command, if_match)
            assert (refused.status_code, refused.json()) == (404, NOT_FOUND), (command[:2], if_match, refused.text)
            assert "etag" not in refused.headers
    assert version_of(api.client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"])) == 1


def test_the_wrong_party_is_403_before_any_412_and_a_stale_version_412_before_any_409(api: Api, deal: Deal) -> None:
    """The order of checks: who may see the order, who may issue the command, the version, the status."""
    order = place(api, deal)["id"]
    wrong_party = [
        (deal.buyer, ("POST", "accept/", {})),
        (deal.buyer, ("POST", "deliveries/", {"message": "Не моя работа"})),
        (deal.creator, ("PATCH", "", {"requirements": "Не мои требования"})),
        (deal.creator, ("POST", "approve/", {})),
        (deal.creator, ("POST", "request-revision/", {"message": "x"})),
        (deal.creator, ("POST", "reviews/", {"rating": 5, "content": "Сам себя"})),
    ]
    for who, command in wrong_party:
        for if_match in IF_MATCHES:
            refused = _command(api, who, order, command, if_match)
            assert (refused.status_code, refused.json()) == (403, FORBIDDEN), (command[:2], if_match, refused.text)
    auditor = grant(api, api.verified_user(), "auditor")  # sees the order, changes nothing
    for if_match in IF_MATCHES:
        assert _command(api, auditor, order, ("POST", "accept/", {}), if_match).status_code == 403, if_match
    # The right party naming a stale version learns the current one (412), not the status (409).
    stale = _command(api, deal.buyer, order, ("POST", "approve/", {}), '"77"')
    assert stale.status_code == 412 and stale.json()["version"] == 1 and stale.headers["etag"] == '"1"'
    wrong_state = _command(api, deal.buyer, order, ("POST", "approve/", {}), '"1"')
    assert wrong_state.status_code == 409 and wrong_state.json()["status"] == "pending"
    # A revision the service never allows is the buyer's 403 too, before the version.
    fixed = a_deal(api, allows_modifications=False)
    delivered = order_in(api, fixed, "delivered")
    for if_match in IF_MATCHES:
        never = _command(api, fixed.buyer, delivered, ("POST", "request-revision/", {}), if_match)
        assert (never.status_code, never.json()) == (403, FORBIDDEN), (if_match, never.text)
    assert version_of(api.client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"])) == 1


def test_an_idempotency_key_retried_concurrently_places_one_order(api: Api, deal: Deal) -> None:
    body = {"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()}
    headers = deal.buyer["headers"] | {"Idempotency-Key": f"place-{deal.buyer['id']}"}
    answers: list[Any] = []
    start = threading.Barrier(10)

    def attempt() -> None:
        start.wait()
        answers.append(api.client.post("/api/v1/orders/", headers=headers, json=body))

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert api.client.get("/api/v1/orders/", headers=deal.buyer["headers"]).json()["count"] == 1
    reused = api.client.post("/api/v1/orders/", headers=headers, json=body | {"requirements": "другое"})
    assert reused.status_code == 422


def test_history_and_as_of_walk_the_whole_lifecycle(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = place(api, deal)["id"]
        steps: list[tuple[str, str, dict[str, Any], str]] = [
            ("creator", "accept", {}, "in_progress"),
            ("creator", "deliveries", {"message": "v1"}, "delivered"),
            ("buyer", "request-revision", {"message": "ещё"}, "in_progress"),
            ("creator", "deliveries", {"message": "v2"}, "delivered"),
            ("buyer", "approve", {}, "completed"),
            ("buyer", "reviews", {"content": "Спасибо", "rating": 5}, "completed"),
        ]
        for who, action, body, _ in steps:
            clock.advance(timedelta(minutes=1))
            party = deal.creator if who == "creator" else deal.buyer
            expect = 201 if action in ("deliveries", "reviews") else 200
            act(api, party, order, action, body, expect=expect)
        history = client.get(f"/api/v1/orders/{order}/history/", headers=deal.buyer["headers"]).json()["results"]
        assert [e["type"] for e in history] == [
            "OrderPlaced",
            "OrderAccepted",
            "WorkDelivered",
            "RevisionRequested",
            "WorkDelivered",
            "OrderCompleted",
            "OrderReviewed",
        ]
        assert [e["version"] for e in history] == list(range(1, 8))
        assert history[0]["actor"] == {"kind": "user", "id": deal.buyer["id"], "username": deal.buyer["username"]}
        assert history[1]["actor"]["username"] == deal.creator["username"]
        assert history[2]["data"]["message"] == "v1" and history[6]["data"]["rating"] == 5
        expected = ["pending"] + [status for *_, status in steps]
        for version, status in enumerate(expected, start=1):
            then = client.get(f"/api/v1/orders/{order}/?as_of={version}", headers=deal.buyer["headers"])
            assert then.status_code == 200 and then.json()["status"] == status, version
            assert version_of(then) == version
            # Half a minute after the event, the order was still as that event left it.
            moment = datetime.fromisoformat(history[version - 1]["occurred_at"].replace("Z", "+00:00"))
            at_time = client.get(
                f"/api/v1/orders/{order}/",
                params={"as_of": (moment + timedelta(seconds=30)).isoformat()},
                headers=deal.buyer["headers"],
            )
            assert at_time.status_code == 200 and at_time.json()["status"] == status, version
            # The same time with its `+` left unencoded in the URL (it arrives as a space) means the same.
            unencoded = (moment + timedelta(seconds=30)).isoformat()
            assert "+" in unencoded
            typed = client.get(f"/api/v1/orders/{order}/?as_of={unencoded}", headers=deal.buyer["headers"])
            assert typed.status_code == 200 and typed.json() == at_time.json(), version
        assert client.get(f"/api/v1/orders/{order}/?as_of=99", headers=deal.buyer["headers"]).status_code == 422
        assert client.get(f"/api/v1/orders/{order}/?as_of=yesterday", headers=deal.buyer["headers"]).status_code == 422
        before = client.get(
            f"/api/v1/orders/{order}/", params={"as_of": "2000-01-01T00:00:00Z"}, headers=deal.buyer["headers"]
        )
        assert before.status_code == 404


@pytest.mark.parametrize("bad", BAD_BODY_IDS)
def test_ids_in_an_order_are_whole_positive_json_numbers(api: Api, deal: Deal, bad: Any) -> None:
    valid = {
        "service_id": deal.service["id"],
        "delivery_date": (date.today() + timedelta(days=5)).isoformat(),
        "selected_option_ids": [deal.service["options"][0]["id"]],
    }
    for change, field in [
        ({"service_id": bad}, "service_id"),
        ({"selected_option_ids": [bad, deal.service["options"][1]["id"]]}, "selected_option_ids.0"),
    ]:
        response = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=valid | change)
        assert (response.status_code, response.json()) == (422, refused_id(field)), change
    assert api.client.get("/api/v1/orders/", headers=deal.buyer["headers"]).json()["count"] == 0
    placed = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=valid)
    assert placed.status_code == 201, placed.text
    assert [o["id"] for o in placed.json()["selected_options"]] == valid["selected_option_ids"]


@pytest.mark.parametrize("bad", BAD_BODY_IDS)
def test_delivered_file_ids_are_whole_positive_json_numbers(api: Api, deal: Deal, bad: Any) -> None:
    order = order_in(api, deal, "in_progress")
    response = api.client.post(
        f"/api/v1/orders/{order}/deliveries/", headers=deal.creator["headers"], json={"message": "x", "file_ids": [bad]}
    )
    assert (response.status_code, response.json()) == (422, refused_id("file_ids.0"))
    assert act(api, deal.creator, order, "deliveries", {"message": "Готово", "file_ids": []}, expect=201)["files"] == []


def test_delivered_files_stay_downloadable_to_both_parties(api: Api, deal: Deal) -> None:
    order = order_in(api, deal, "in_progress")
    uploaded = api.client.post(
        "/api/v1/files/upload/",
        headers=deal.creator["headers"],
        files={"file": ("cut.txt", "финальный монтаж".encode(), "text/plain")},
    )
    assert uploaded.status_code == 201, uploaded.text
    file = uploaded.json()
    stranger = api.verified_user()
    assert api.client.get(file["url"], headers=deal.buyer["headers"]).status_code == 404
    foreign = api.client.post(
        f"/api/v1/orders/{order}/deliveries/",
        headers=deal.buyer["headers"],
        json={"message": "x", "file_ids": [file["id"]]},
    )
    assert foreign.status_code in (403, 422)
    not_mine = api.client.post(
        f"/api/v1/orders/{order}/deliveries/",
        headers=deal.creator["headers"],
        json={"message": "x", "file_ids": [999999]},
    )
    assert not_mine.status_code == 422 and "file_ids" in not_mine.json()["fields"]
    outsider = api.client.post(  # learns nothing of the order nor of the file
        f"/api/v1/orders/{order}/deliveries/",
        headers=stranger["headers"],
        json={"message": "x", "file_ids": [file["id"]]},
    )
    assert outsider.status_code == 404, outsider.text
    delivery = act(api, deal.creator, order, "deliveries", {"message": "Монтаж", "file_ids": [file["id"]]}, expect=201)
    assert [f["id"] for f in delivery["files"]] == [file["id"]]
    assert delivery["files"][0]["name"] == "cut.txt" and delivery["files"][0]["url"] == file["url"]
    assert api.client.delete(f"/api/v1/files/{file['id']}/", headers=deal.creator["headers"]).status_code == 204
    for party in (deal.buyer, deal.creator):
        download = api.client.get(file["url"], headers=party["headers"])
        assert download.status_code == 200 and download.content == "финальный монтаж".encode()
    assert api.client.get(file["url"], headers=stranger["headers"]).status_code == 404
    listed = api.client.get(f"/api/v1/orders/{order}/deliveries/", headers=deal.buyer["headers"]).json()
    assert listed["results"][0]["files"][0]["id"] == file["id"]
