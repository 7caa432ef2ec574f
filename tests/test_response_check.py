"""The check every API test runs (tests/response_check.py) catches an answer that is not what its route declares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from api.errors import EXCEPTION_HANDLERS, not_found
from api.openapi import DocumentedSocket, Operation, endpoint
from api.responses import JSON
from api.routes import orders as orders_route
from api.schemas.orders import render_order
from api.schemas.out import Number, Out, omittable
from tests.conftest import Api
from tests.orders_world import a_deal, place
from tests.response_check import MISMATCHES, ResponseCheck, ResponseMismatch


class ThingOut(Out):
    id: int
    price: Number
    note: str = omittable("Only sometimes.")


# What each route answers is set by the test, so one app serves every case.
answer: dict[str, Any] = {}


async def thing(request: Request) -> Response:
    if answer.get("missing"):
        raise not_found()
    return JSON(answer["body"], status_code=answer.get("status", 200))


async def things(request: Request) -> Response:
    return JSON({"count": 1, "next": None, "previous": None, "results": [answer["body"]]})


async def removed(request: Request) -> Response:
    return Response(answer.get("bytes", b""), status_code=204)


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(answer["frame"])
    await websocket.close()


app = Starlette(
    routes=[
        endpoint("GET", "/things/{id:id}/", thing, Operation("A thing", response=ThingOut, auth=False)),
        endpoint("GET", "/things/", things, Operation("Things", response=ThingOut, auth=False, paginated=True)),
        endpoint("DELETE", "/things/{id:id}/", removed, Operation("Remove a thing", status=204, auth=False)),
        DocumentedSocket("/ws/things/", socket, pushes=ThingOut),
    ],
    exception_handlers=EXCEPTION_HANDLERS,
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    answer.clear()
    with TestClient(ResponseCheck(app)) as client:
        yield client
    MISMATCHES.clear()


@contextmanager
def mismatch(pattern: str) -> Iterator[pytest.ExceptionInfo[ResponseMismatch]]:
    """The request inside raises a mismatch matching `pattern`; its record is dropped, or this test would fail."""
    with pytest.raises(ResponseMismatch, match=pattern) as raised:
        yield raised
    assert len(MISMATCHES) == 1
    MISMATCHES.clear()


def test_an_answer_as_declared_passes(client: TestClient) -> None:
    answer["body"] = {"id": 1, "price": Decimal("12.50")}
    assert client.get("/things/1/").json() == {"id": 1, "price": 12.5}
    answer["body"] = {"id": 1, "price": 3, "note": "с запиской"}
    assert client.get("/things/").status_code == 200
    assert client.delete("/things/1/").status_code == 204
    answer["missing"] = True
    assert client.get("/things/1/").status_code == 404
    assert MISMATCHES == []


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"price": 1}, "id", "Field required"),
        ({"id": 1, "price": 1, "colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"id": 1, "price": "12.50"}, "price", "Value error, Ожидается число JSON."),
        ({"id": "1", "price": 1}, "id", "Input should be a valid integer"),
        ({"id": 1, "price": 1, "note": None}, "note", "Input should be a valid string"),
    ],
)
def test_a_wrong_answer_fails_naming_the_route_and_the_field(
    client: TestClient, body: dict[str, Any], field: str, says: str
) -> None:
    answer["body"] = body
    with mismatch("ThingOut") as raised:
        client.get("/things/7/")
    message = str(raised.value)
    assert "GET /things/7/ (route GET /things/{id:id}/) answered 200 with a body that is not ThingOut" in message
    assert f"  {field}: {says}" in message
    with mismatch(rf"results\.0\.{field}: "):
        client.get("/things/")


def test_a_status_the_route_does_not_declare_fails(client: TestClient) -> None:
    answer.update({"body": {"id": 1, "price": 1}, "status": 201})
    with mismatch(r"answered 201, but declares only 200"):
        client.get("/things/1/")


def test_an_error_answers_its_shared_body(client: TestClient) -> None:
    answer.update({"body": {"message": "нет"}, "status": 404})
    with mismatch(r"(?s)answered 404 with a body that is not DetailOut:.*detail: Field"):
        client.get("/things/1/")


def test_a_204_has_no_body(client: TestClient) -> None:
    answer["bytes"] = b"{}"
    with mismatch(r"answered 204 with a body"):
        client.delete("/things/1/")


def test_a_wrong_frame_is_recorded_and_fails_the_test(client: TestClient) -> None:
    answer["frame"] = '{"id": 1}'
    with client.websocket_connect("/ws/things/") as ws:
        assert ws.receive_json() == {"id": 1}
    assert len(MISMATCHES) == 1
    assert "WebSocket /ws/things/ (route /ws/things/) pushed a frame that is not ThingOut" in MISMATCHES[0]
    assert "  price: Field required" in MISMATCHES[0]
    MISMATCHES.clear()
    answer["frame"] = '{"error": "Ожидается JSON-объект."}'
    with client.websocket_connect("/ws/things/") as ws:
        ws.receive_json()
    assert MISMATCHES == []


def test_on_the_real_app_a_renderer_that_drifts_from_its_model_fails(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """An order answered with `total_price` renamed and `is_late` dropped: the route and both keys are named."""
    deal = a_deal(api)
    order = place(api, deal)
    real = render_order

    def drifted(row: dict[str, Any], today: date) -> dict[str, Any]:
        answer = real(row, today)
        answer["total"] = answer.pop("total_price")
        del answer["is_late"]
        return answer

    monkeypatch.setattr(orders_route, "render_order", drifted)
    with mismatch(r"GET /api/v1/orders/\d+/ \(route GET /api/v1/orders/{id:id}/\) answered 200") as raised:
        api.client.get(f"/api/v1/orders/{order['id']}/", headers=deal.buyer["headers"])
    assert "  total_price: Field required\n  is_late: Field required\n  total: Extra inputs" in str(raised.value)
    with mismatch(r"(?s)GET /api/v1/orders/ .*results\.0\.total_price: Field required"):
        api.client.get("/api/v1/orders/", headers=deal.buyer["headers"])
