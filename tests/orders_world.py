"""Given-steps for order tests: a creator with a service, a verified buyer, an order in a state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from tests.conftest import Api


@dataclass
class Deal:
    creator: dict[str, Any]
    buyer: dict[str, Any]
    service: dict[str, Any]


def a_deal(api: Api, **service_fields: Any) -> Deal:
    creator = api.creator()
    return Deal(creator=creator, buyer=api.verified_user(), service=api.service(creator, **service_fields))


def place(api: Api, deal: Deal, **fields: Any) -> dict[str, Any]:
    body = {
        "service_id": deal.service["id"],
        "requirements": "Распаковка и обзор",
        "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
        "selected_option_ids": [option["id"] for option in deal.service["options"]],
    } | fields
    response = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=body)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def act(api: Api, who: dict[str, Any], order: int, action: str, body: Any = None, expect: int = 200) -> dict[str, Any]:
    response = api.client.post(f"/api/v1/orders/{order}/{action}/", headers=who["headers"], json=body)
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


def order_in(api: Api, deal: Deal, status: str) -> int:
    """A new order of `deal` brought to `status` through the API."""
    order: int = place(api, deal)["id"]
    if status in ("in_progress", "delivered", "completed"):
        act(api, deal.creator, order, "accept")
    if status in ("delivered", "completed"):
        act(api, deal.creator, order, "deliveries", {"message": "Готово"}, expect=201)
    if status == "completed":
        act(api, deal.buyer, order, "approve")
    if status == "cancelled":
        act(api, deal.buyer, order, "cancel", {"reason": "Передумал"})
    return order
