"""No input gets a 500: each case a fuzzer or an attacker found answers its exact 4xx, on both backends.

Digits are ASCII digits only (`str.isdigit()` accepts "²", which `int()` refuses; `int()` refuses more
than 4,300 digits), a page must end within a BIGINT OFFSET, JSON nests at most MAX_JSON_DEPTH
deep, search text reaches SQL only once it can be stored. A 500 that does happen (a bug) answers the
catalogue's body, and logs one line with the request id and nothing the client sent.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Scope
from starlette.websockets import WebSocketDisconnect

from api.app import build_app
from api.body import MAX_JSON_DEPTH
from tests.conftest import Api, refused
from tests.orders_world import Deal, a_deal, place
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.numbers import MAX_ID
from ugc.wiring import runtime

NOT_FOUND = {"detail": "Страница не найдена."}
MALFORMED_JSON = {"error": "Некорректный JSON в теле запроса."}
STALE = {"error": "Объект изменился с момента загрузки; обновите его и повторите запрос."}
UNSUPPORTED_CODING = {
    "error": "Тело запроса в кодировке Content-Encoding не принимается; отправьте его без сжатия (identity)."
}
INTERNAL = {"detail": "Внутренняя ошибка сервера."}
UNSTORABLE = "Текст содержит недопустимые управляющие символы."
NOT_AN_ID = "Ожидается положительное целое число."
NOT_A_DATE = "Неправильный формат даты. Используйте формат YYYY-MM-DD."
TOO_DEEP = {
    "error": "Ошибка валидации данных.",
    "fields": {"page": ["Страница слишком далеко от начала списка: доступны первые 10000 записей. Уточните фильтры."]},
}
REPEATED = "Параметр передан несколько раз; передайте один."
REPEATED_NAME = "Поле передано в теле запроса несколько раз; передайте одно."
NOTHING_DELIVERED = "Добавьте к доставке сообщение или файлы."
# Past Python's 4,300-digit limit for int(), and past any BIGINT.
HUGE = "9" * 5000
# 922337203685477580 × 20 (the default page size) is past 2**63 - 1: the OFFSET used to overflow.
FAR_PAGE = "922337203685477580"


@dataclass
class World:
    deal: Deal
    order: int
    conversation: int

    @property
    def buyer(self) -> dict[str, str]:
        return dict(self.deal.buyer["headers"])

    @property
    def creator(self) -> dict[str, str]:
        return dict(self.deal.creator["headers"])


@pytest.fixture(scope="module")
def world(app_client: TestClient, settings: Settings) -> World:
    api = Api(app_client, settings)
    deal = a_deal(api)
    order = place(api, deal)["id"]
    started = app_client.post(
        "/api/v1/conversations/", headers=deal.buyer["headers"], json={"recipient_id": deal.creator["id"]}
    )
    assert started.status_code == 201, started.text
    return World(deal=deal, order=order, conversation=started.json()["id"])


def lists(world: World) -> list[tuple[str, dict[str, str]]]:
    """Every paginated GET, with the headers it needs."""
    profile = world.deal.creator["profile"]["id"]
    return [
        ("/api/v1/categories/", {}),
        ("/api/skills/", {}),
        ("/api/v1/services/", {}),
        (f"/api/creator-skills/?creator_profile_id={profile}", world.buyer),
        (f"/api/portfolio/?creator_profile_id={profile}", {}),
        (f"/api/v1/creators/{profile}/reviews/", {}),
        ("/api/v1/orders/", world.buyer),
        ("/api/v1/files/", world.buyer),
        ("/api/v1/notifications/", world.creator),
        ("/api/v1/conversations/", world.buyer),
        (f"/api/v1/conversations/{world.conversation}/messages/", world.buyer),
    ]


def with_query(path: str, query: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{query}"


# Page numbers and sizes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    ["²", "٣", HUGE, FAR_PAGE, str(MAX_ID + 1), "0", "-1", "1.0"],
    ids=[
        "superscript",
        "arabic-indic",
        "5000-digits",
        "offset-past-bigint",
        "past-bigint",
        "zero",
        "negative",
        "fraction",
    ],
)
def test_a_page_that_cannot_exist_is_404_on_every_list(api: Api, world: World, page: str) -> None:
    for path, headers in lists(world):
        response = api.client.get(with_query(path, f"page={page}"), headers=headers)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), path


@pytest.mark.parametrize(
    ("page", "size"), [(FAR_PAGE, "10"), (str(MAX_ID), "1"), ("501", "20"), ("101", "100"), ("10001", "1")]
)
def test_a_page_starting_past_the_depth_cap_is_422_on_every_list(api: Api, world: World, page: str, size: str) -> None:
    """Deep OFFSETs cost in proportion to their depth (api/pagination.py): refused before any read."""
    for path, headers in lists(world):
        response = api.client.get(with_query(path, f"page={page}&page_size={size}"), headers=headers)
        assert (response.status_code, response.json()) == (422, TOO_DEEP), path


@pytest.mark.parametrize(("page", "size"), [("500", "20"), ("100", "100"), ("10000", "1")])
def test_the_deepest_pages_within_the_cap_are_404_beyond_the_end(api: Api, world: World, page: str, size: str) -> None:
    for path, headers in lists(world):
        response = api.client.get(with_query(path, f"page={page}&page_size={size}"), headers=headers)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), path


def test_an_order_history_has_no_depth_cap(api: Api, world: World) -> None:
    """A history page slices the order's log read whole: an auditor reaches every event, however deep."""
    response = api.client.get(f"/api/v1/orders/{world.order}/history/?page=501", headers=world.buyer)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(("size", "expected"), [("³", 20), ("٣", 20), ("0", 20), (HUGE, 100), ("abc", 20)])
def test_a_page_size_that_is_no_size_means_the_default_and_a_huge_one_the_maximum(
    api: Api, world: World, size: str, expected: int
) -> None:
    for path, headers in lists(world):
        plain = api.client.get(path, headers=headers)
        sized = api.client.get(with_query(path, f"page_size={size}"), headers=headers)
        assert (sized.status_code, plain.status_code) == (200, 200), path
        assert sized.json()["results"] == plain.json()["results"][:expected], path


@pytest.mark.parametrize("page", ["", "%20"], ids=["empty", "blank"])
def test_an_empty_page_means_the_first_on_every_list(api: Api, world: World, page: str) -> None:
    """As every other empty query parameter counts as absent (`?page_size=`, `?status=`, `?category=`),
    and as DRF reads it (a form's empty field): it was a 404."""
    for path, headers in lists(world):
        plain = api.client.get(path, headers=headers)
        empty = api.client.get(with_query(path, f"page={page}"), headers=headers)
        assert (empty.status_code, empty.json()) == (200, plain.json()), path


@pytest.mark.parametrize("query", ["page=1&page=2", "page_size=5&page_size=10", "page=1&page=1", "page=&page=2"])
def test_a_paging_parameter_given_twice_is_422_on_every_list(api: Api, world: World, query: str) -> None:
    """Which of two values counts is a guess (the last did here, the first in other frameworks and in a
    cache in front): the list is refused rather than answered for a page the client may not have meant."""
    name = query.partition("=")[0]
    for path, headers in lists(world):
        response = api.client.get(with_query(path, query), headers=headers)
        assert (response.status_code, response.json()) == (422, refused(name, REPEATED)), path


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        ("/api/v1/services/", "category=1&category=2", "category"),
        ("/api/v1/services/", "search=a&search=b", "search"),
        ("/api/skills/", "search=a&search=b", "search"),
        ("/api/v1/orders/", "status=pending&status=completed", "status"),
        ("/api/v1/notifications/", "read=true&read=false", "read"),
        ("/api/v1/orders/{order}/", "as_of=1&as_of=1", "as_of"),
        ("/api/v1/creators/{profile}/", "detail=true&detail=false", "detail"),
    ],
)
def test_a_filter_given_twice_is_422(api: Api, world: World, path: str, query: str, name: str) -> None:
    url = path.format(order=world.order, profile=world.deal.creator["profile"]["id"])
    response = api.client.get(f"{url}?{query}", headers=world.buyer)
    assert (response.status_code, response.json()) == (422, refused(name, REPEATED))


def test_a_parameter_a_route_does_not_read_may_come_twice(api: Api, world: World) -> None:
    """A cache-buster or tracking parameter repeated changes nothing the route reads."""
    for path, headers in lists(world):
        response = api.client.get(with_query(path, "utm=a&utm=b"), headers=headers)
        assert response.status_code == 200, path


def test_a_parameter_given_twice_without_a_token_is_401_first(api: Api) -> None:
    response = api.client.get("/api/v1/orders/?page=1&page=2")
    assert (response.status_code, response.json()) == (401, {"detail": "Учетные данные не были предоставлены."})


# Ids, versions and times in query strings and headers ----------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "text"),
    [
        ("category=²", "category", "Ожидается целое число."),
        (f"category={HUGE}", "category", NOT_AN_ID),
        (f"creator={MAX_ID + 1}", "creator", NOT_AN_ID),
        # An integer, only not a positive one: the message says what is wrong with it.
        ("category=-1", "category", NOT_AN_ID),
        ("creator=-0", "creator", NOT_AN_ID),
        ("min_price=²", "min_price", "Ожидается число."),
        ("min_price=١٢٣", "min_price", "Ожидается число."),
        ("max_price=1_000", "max_price", "Ожидается число."),
        ("max_price=NaN", "max_price", "Ожидается число."),
        ("max_price=1e999999999", "max_price", "Значение не может быть больше 1000000000000."),
    ],
)
def test_service_filters_refuse_what_is_not_ascii_digits(api: Api, query: str, field: str, text: str) -> None:
    response = api.client.get(f"/api/v1/services/?{query}")
    assert (response.status_code, response.json()) == (422, refused(field, text))


@pytest.mark.parametrize("path", ["/api/portfolio/?creator_profile_id=", "/api/portfolio-images/?portfolio_item_id="])
@pytest.mark.parametrize("value", ["²", HUGE, str(MAX_ID + 1), "0", "-1"])
def test_id_filters_refuse_what_is_not_an_id(api: Api, world: World, path: str, value: str) -> None:
    field = path.rsplit("?", 1)[1].rstrip("=")
    response = api.client.get(path + value, headers=world.buyer)
    assert (response.status_code, response.json()) == (422, refused(field, NOT_AN_ID))


@pytest.mark.parametrize(
    ("as_of", "text"),
    [
        ("²", "Ожидается номер версии или время ISO 8601."),
        ("٣", "Ожидается номер версии или время ISO 8601."),
        (HUGE, "Версия должна быть от 1 до 1."),
        (str(MAX_ID + 1), "Версия должна быть от 1 до 1."),
        ("0", "Версия должна быть от 1 до 1."),
    ],
)
def test_as_of_that_is_no_version_or_time_is_422(api: Api, world: World, as_of: str, text: str) -> None:
    response = api.client.get(f"/api/v1/orders/{world.order}/", params={"as_of": as_of}, headers=world.buyer)
    assert (response.status_code, response.json()) == (422, refused("as_of", text))


def raw_request(client: TestClient, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Header bytes as a real client may send them (a lone 0xB2), which httpx would re-encode as UTF-8:
    straight to the app, on the test client's event loop, through every middleware."""
    portal = client.portal
    assert portal is not None, "only inside `with TestClient(...)`"
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("10.254.254.254", 50000),
        "server": ("testserver", 80),
    }
    portal.call(client.app, scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("version", [b'"\xb2"', b"\xb2", b'W/"\xb2"', b'"' + HUGE.encode() + b'"', b'"-1"', b'"1.0"'])
def test_an_if_match_that_names_no_version_is_412(api: Api, world: World, version: bytes) -> None:
    headers = [(b"authorization", world.creator["Authorization"].encode()), (b"if-match", version)]
    status, body = raw_request(api.client, "POST", f"/api/v1/orders/{world.order}/accept/", headers)
    assert (status, json.loads(body)) == (412, STALE | {"version": 1})  # a stale version: the current one told
    assert api.client.get(f"/api/v1/orders/{world.order}/", headers=world.buyer).json()["status"] == "pending"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "x-foo"])
def test_a_json_body_in_a_content_coding_not_decoded_here_is_415_and_changes_nothing(
    api: Api, world: World, coding: str
) -> None:
    """Read as if it were plain, a body labelled `x-foo` that happened to be JSON was applied."""
    url = f"/api/v1/orders/{world.order}/"
    before = api.client.get(url, headers=world.buyer).json()["requirements"]
    body = json.dumps({"requirements": "Сжатые требования"}).encode()
    headers = world.buyer | {"Content-Type": "application/json", "Content-Encoding": coding}
    refused = api.client.patch(url, headers=headers, content=gzip.compress(body) if coding == "gzip" else body)
    assert (refused.status_code, refused.json()) == (415, UNSUPPORTED_CODING)
    assert refused.headers["accept-encoding"] == "identity"
    assert api.client.get(url, headers=world.buyer).json()["requirements"] == before
    plain = api.client.patch(url, headers=world.buyer | {"Content-Encoding": "identity"}, content=body)
    assert plain.status_code == 200 and plain.json()["requirements"] == "Сжатые требования"


UNSUPPORTED_CHARSET = {
    "error": "Тело JSON принимается только в кодировке UTF-8 (Content-Type: application/json; charset=utf-8)."
}


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [("windows-1251", "cp1251"), ("ISO-8859-1", "latin-1"), ("utf-16", "utf-16"), ("koi8-r", "koi8-r"), ("", "utf-8")],
)
def test_a_json_body_in_a_charset_other_than_utf8_is_415_and_changes_nothing(
    api: Api, world: World, charset: str, encoding: str
) -> None:
    """JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset was read as UTF-8 whatever
    it said, so a windows-1251 one was 400 "not JSON" and a UTF-16 one, detected by the parser, applied."""
    url = f"/api/v1/orders/{world.order}/"
    before = api.client.get(url, headers=world.buyer).json()["requirements"]
    text = "Café crème" if encoding == "latin-1" else "Требования"
    body = json.dumps({"requirements": text}, ensure_ascii=False).encode(encoding)
    headers = world.buyer | {"Content-Type": f"application/json; charset={charset}"}
    refused_charset = api.client.patch(url, headers=headers, content=body)
    assert (refused_charset.status_code, refused_charset.json()) == (415, UNSUPPORTED_CHARSET), charset
    assert refused_charset.headers["accept"] == refused_charset.headers["accept-patch"] == "application/json"
    assert api.client.get(url, headers=world.buyer).json()["requirements"] == before


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [
        ("utf-16", "application/json"),  # with its byte order mark
        ("utf-16-le", "application/json"),
        ("utf-16-be", ""),
        ("utf-32", "application/json"),
        ("utf-32-be", ""),
        ("cp1251", "application/json"),  # no UTF-8: its Cyrillic bytes do not decode
    ],
)
def test_a_json_body_not_in_utf8_is_415_though_no_charset_says_so_and_changes_nothing(
    api: Api, world: World, encoding: str, content_type: str
) -> None:
    """RFC 8259 §8.1: JSON between systems is UTF-8. Undeclared, a UTF-16 or UTF-32 body was applied
    (the standard parser guesses the encoding from the NULs) and a windows-1251 one was 400 "not JSON"."""
    url = f"/api/v1/orders/{world.order}/"
    before = api.client.get(url, headers=world.buyer).json()["requirements"]
    body = json.dumps({"requirements": "Требования"}, ensure_ascii=False).encode(encoding)
    headers = world.buyer | ({"Content-Type": content_type} if content_type else {})
    refused = api.client.patch(url, headers=headers, content=body)
    assert (refused.status_code, refused.json()) == (415, UNSUPPORTED_CHARSET), encoding
    assert refused.headers["accept"] == "application/json"
    assert api.client.get(url, headers=world.buyer).json()["requirements"] == before


def test_a_utf8_byte_order_mark_before_a_json_body_is_skipped(api: Api, world: World) -> None:
    """RFC 8259 §8.1 lets a parser ignore it: it says "UTF-8" and nothing else (Windows' editors write it)."""
    url = f"/api/v1/orders/{world.order}/"
    body = json.dumps({"requirements": "С меткой порядка байтов"}, ensure_ascii=False).encode("utf-8-sig")
    accepted = api.client.patch(url, headers=world.buyer | {"Content-Type": "application/json"}, content=body)
    assert accepted.status_code == 200 and accepted.json()["requirements"] == "С меткой порядка байтов", accepted.text


UNSUPPORTED_MEDIA_TYPE = {"error": "Ожидается тело запроса в формате JSON (Content-Type: application/json)."}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "text/plain; charset=utf-8",
        "multipart/form-data; boundary=b",
        "application/merge-patch+json",
        "text/json",
    ],
)
def test_a_body_in_a_media_type_other_than_json_is_415_with_what_is_taken(
    api: Api, world: World, content_type: str
) -> None:
    """RFC 9110 §15.5.16: 415 is the answer to a body in a media type the endpoint does not take (it
    was 400); `Accept` names the one it takes, and `Accept-Patch` (RFC 5789 §2.2) or `Accept-Post`."""
    url = f"/api/v1/orders/{world.order}/"
    before = api.client.get(url, headers=world.buyer).json()
    body = json.dumps({"requirements": "Не JSON по заголовку"}).encode()
    patched = api.client.patch(url, headers=world.buyer | {"Content-Type": content_type}, content=body)
    assert (patched.status_code, patched.json()) == (415, UNSUPPORTED_MEDIA_TYPE)
    assert patched.headers["accept"] == patched.headers["accept-patch"] == "application/json"
    posted = api.client.post(f"{url}accept/", headers=world.creator | {"Content-Type": content_type}, content=b"{}")
    assert (posted.status_code, posted.json()) == (415, UNSUPPORTED_MEDIA_TYPE)
    assert posted.headers["accept"] == posted.headers["accept-post"] == "application/json"
    assert "accept-patch" not in posted.headers
    assert api.client.get(url, headers=world.buyer).json() == before


@pytest.mark.parametrize("content_type", [";;;", "", " ", ";charset=utf-8", "/", "application/json x"])
def test_a_body_whose_content_type_names_no_media_type_is_415_and_changes_nothing(
    api: Api, world: World, content_type: str
) -> None:
    """A Content-Type sent but naming no media type (`;;;`, empty, only parameters) was taken for no
    Content-Type at all, and the body read as JSON and applied; like any type but JSON's it is 415."""
    url = f"/api/v1/orders/{world.order}/"
    before = api.client.get(url, headers=world.buyer).json()
    body = json.dumps({"requirements": "Тип тела не назван"}, ensure_ascii=False).encode()
    patched = api.client.patch(url, headers=world.buyer | {"Content-Type": content_type}, content=body)
    assert (patched.status_code, patched.json()) == (415, UNSUPPORTED_MEDIA_TYPE), content_type
    assert patched.headers["accept"] == patched.headers["accept-patch"] == "application/json"
    assert api.client.get(url, headers=world.buyer).json() == before


def test_a_body_with_two_content_types_that_differ_is_415_and_changes_nothing(api: Api, world: World) -> None:
    """Content-Type is one value (RFC 9110 §8.3): of `application/json` and `text/plain` the first was
    taken and the body applied, where reading the other first refused it; which one a proxy keeps is its own."""
    url = f"/api/v1/orders/{world.order}/"
    before = api.client.get(url, headers=world.buyer).json()
    body = json.dumps({"requirements": "Два типа тела"}, ensure_ascii=False).encode()
    for second in ("text/plain", "application/json; charset=windows-1251"):
        both = [*world.buyer.items(), ("Content-Type", "application/json"), ("Content-Type", second)]
        patched = api.client.patch(url, headers=both, content=body)
        assert (patched.status_code, patched.json()) == (415, UNSUPPORTED_MEDIA_TYPE), second
    assert api.client.get(url, headers=world.buyer).json() == before
    same = [*world.buyer.items(), ("Content-Type", "application/json"), ("Content-Type", "application/json")]
    assert api.client.patch(url, headers=same, content=body).status_code == 200


def test_two_authorization_headers_are_401_whichever_comes_first(api: Api, world: World) -> None:
    """Authorization is one value: with two, the first was taken, so a request carrying someone's token
    and another's was served as whichever a proxy left first."""
    token = world.buyer["Authorization"]
    for pair in ((token, "Bearer forged"), ("Bearer forged", token), (token, token), (token, "Basic eDp5")):
        refused = api.client.get("/api/v1/users/me/", headers=[("Authorization", pair[0]), ("Authorization", pair[1])])
        assert (refused.status_code, refused.json()) == (401, {"detail": "Токен недействителен или просрочен."}), pair
    assert api.client.get("/api/v1/users/me/", headers=world.buyer).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "text/plain;charset=UTF-8"},
    ],
)
def test_a_command_sent_without_a_body_is_served_whatever_its_content_type_says(
    api: Api, world: World, headers: dict[str, str]
) -> None:
    """An empty body is no content, in no media type to refuse: `fetch(url, {method: "POST", body: ""})`
    declares text/plain, jQuery's `$.post(url)` a form, and neither sends a byte."""
    order = place(api, world.deal)["id"]
    accepted = api.client.post(f"/api/v1/orders/{order}/accept/", headers=world.creator | headers, content=b"")
    assert accepted.status_code == 200 and accepted.json()["status"] == "in_progress", accepted.text


def test_a_json_body_without_a_content_type_is_read_as_json(api: Api, world: World) -> None:
    """RFC 9110 §8.3 lets the recipient tell the type from the data; a client that leaves the header out is served."""
    url = f"/api/v1/orders/{world.order}/"
    body = json.dumps({"requirements": "Без Content-Type"}, ensure_ascii=False).encode()
    patched = api.client.patch(url, headers=world.buyer, content=body)
    assert patched.status_code == 200 and patched.json()["requirements"] == "Без Content-Type", patched.text


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=UTF-8", 'application/json;charset="utf-8"', "application/json; charset=utf8"],
)
def test_a_json_body_declared_utf8_in_any_spelling_is_read(api: Api, world: World, content_type: str) -> None:
    url = f"/api/v1/orders/{world.order}/"
    body = json.dumps({"requirements": content_type}, ensure_ascii=False).encode()
    accepted = api.client.patch(url, headers=world.buyer | {"Content-Type": content_type}, content=body)
    assert accepted.status_code == 200 and accepted.json()["requirements"] == content_type, accepted.text


@pytest.mark.parametrize(
    ("length", "status", "body"),
    [
        # Not a length at all: the body is read as it comes (here empty, so the fields are missing).
        (
            b"\xb2",
            422,
            {
                "error": "Ошибка валидации данных.",
                "fields": {"username": ["Обязательное поле."], "password": ["Обязательное поле."]},
            },
        ),
        # More digits than any BIGINT: more than any body may be.
        (HUGE.encode(), 413, {"error": "Слишком большой запрос."}),
    ],
    ids=["superscript", "5000-digits"],
)
def test_a_content_length_is_ascii_digits_or_no_length(
    api: Api, length: bytes, status: int, body: dict[str, Any]
) -> None:
    answer = raw_request(
        api.client, "POST", "/api/auth/token/", [(b"content-type", b"application/json"), (b"content-length", length)]
    )
    assert answer == (status, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.mark.parametrize("since", ["²", "٣", HUGE, str(MAX_ID + 1), "-1"])
def test_a_notification_stream_since_no_id_closes_4400(api: Api, world: World, since: str) -> None:
    with pytest.raises(WebSocketDisconnect) as closed:
        with api.client.websocket_connect(f"/ws/notifications/?token={world.deal.buyer['access']}&since={since}") as ws:
            ws.receive_text()
    assert closed.value.code == 4400


@pytest.mark.parametrize("sinces", ["since=0&since=0", "since=0&since=abc", "since=abc&since=0"])
def test_a_notification_stream_since_given_twice_closes_4400(api: Api, world: World, sinces: str) -> None:
    """Of two `since=` the last was taken, even a good one after a bad; REST refuses a parameter given twice (422)."""
    with pytest.raises(WebSocketDisconnect) as closed:
        with api.client.websocket_connect(f"/ws/notifications/?token={world.deal.buyer['access']}&{sinces}") as ws:
            ws.receive_text()
    assert closed.value.code == 4400


@pytest.mark.parametrize("order", ["mine-first", "mine-last", "mine-twice"])
def test_a_socket_with_two_tokens_closes_4401(api: Api, world: World, order: str) -> None:
    """As two Authorization headers are (401): of `?token=` given twice the last was taken, so the
    same pair opened the socket or closed it as the order went."""
    mine = world.deal.creator["access"]
    first, second = {"mine-first": (mine, "forged"), "mine-last": ("forged", mine), "mine-twice": (mine, mine)}[order]
    with pytest.raises(WebSocketDisconnect) as closed:
        with api.client.websocket_connect(f"/ws/notifications/?token={first}&token={second}&since=0") as ws:
            ws.receive_text()  # an open socket replays the creator's new_order at once: nothing waits
    assert (closed.value.code, closed.value.reason) == (4401, "Токен недействителен или просрочен.")


@pytest.mark.parametrize("conversation", ["abc", str(MAX_ID + 1), HUGE, "-1"])
def test_a_conversation_socket_whose_id_is_no_id_closes_4404(api: Api, world: World, conversation: str) -> None:
    """As an unknown conversation: the route's pattern does not match, and Starlette would refuse the
    handshake with a bare HTTP 403 instead of a close code."""
    url = f"/ws/conversations/{conversation}/?token={world.deal.buyer['access']}"
    with pytest.raises(WebSocketDisconnect) as closed:
        with api.client.websocket_connect(url) as ws:
            ws.receive_text()
    assert closed.value.code == 4404


# JSON nesting ---------------------------------------------------------------------------------------


def nested(depth: int, inner: str = "1") -> str:
    return '{"a":' * depth + inner + "}" * depth


DEEP_BODIES = {
    "lists-100000": "[" * 100_000 + "]" * 100_000,
    "objects-1000": nested(1000),
    "inside-a-field": '{"username":' + "[" * 900 + "]" * 900 + "}",
    "one-past-the-limit": nested(MAX_JSON_DEPTH + 1),
}


@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
def test_json_nested_too_deep_is_400_everywhere(api: Api, world: World, body: str) -> None:
    owner = world.creator | {"Content-Type": "application/json"}
    service = world.deal.service["id"]
    for method, path, headers in [
        ("POST", "/api/auth/register/", {"Content-Type": "application/json"}),
        ("POST", "/api/v1/services/", owner),  # parsed again with Decimal for money
        ("PATCH", f"/api/v1/services/{service}/", owner),
        (
            "POST",
            f"/api/v1/conversations/{world.conversation}/messages/",
            world.buyer | {"Content-Type": "application/json"},
        ),
    ]:
        response = api.client.request(method, path, content=body, headers=headers)
        assert (response.status_code, response.json()) == (400, MALFORMED_JSON), path


def test_json_as_deep_as_the_limit_is_read(api: Api, world: World) -> None:
    """At the limit the body parses, and its field is then simply wrong (422), not malformed."""
    body = '{"message":' + nested(MAX_JSON_DEPTH - 1) + "}"
    response = api.client.post(
        f"/api/v1/conversations/{world.conversation}/messages/",
        content=body,
        headers=world.buyer | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


def test_a_list_past_its_count_is_refused_by_the_count_not_item_by_item(api: Api, world: World) -> None:
    """200,000 empty options and 100,000 numbers for tags (~0.8 MB, decoded and checked on a thread):
    one line a field. Checked after their items, they made ~600,000 errors, a 24 MB answer built
    in seconds of the event loop with ~1 GB of memory."""
    body = json.dumps({"options": [{}] * 200_000, "tags": [1] * 100_000}, separators=(",", ":"))
    response = api.client.patch(
        f"/api/v1/services/{world.deal.service['id']}/",
        content=body,
        headers=world.creator | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text[:500]
    assert response.json()["fields"] == {"options": ["Не более 20 опций."], "tags": ["Не более 20 тегов."]}


def test_a_large_body_read_on_a_thread_is_refused_as_a_small_one_is(api: Api, world: World) -> None:
    owner = world.creator | {"Content-Type": "application/json"}
    path = f"/api/v1/services/{world.deal.service['id']}/"
    padding = " " * (100 << 10)
    for body, expected in [
        ("{" + padding, (400, MALFORMED_JSON)),
        ("[" + padding + "]", (400, {"error": "Тело запроса должно быть JSON-объектом."})),
    ]:
        response = api.client.patch(path, content=body, headers=owner)
        assert (response.status_code, response.json()) == expected


def test_a_chat_frame_nested_too_deep_gets_an_error_frame_and_the_socket_stays(api: Api, world: World) -> None:
    url = f"/ws/conversations/{world.conversation}/?token={world.deal.buyer['access']}"
    with api.client.websocket_connect(url) as ws:
        for frame in DEEP_BODIES.values():
            ws.send_text(frame)
            assert ws.receive_json() == {"error": 'Ожидается JSON-объект вида {"message": "текст"}.'}
        ws.send_text('{"message": "всё ещё здесь"}')
        assert ws.receive_json()["message"] == "всё ещё здесь"
        ws.close()


# Search ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/services/", "/api/skills/"])
@pytest.mark.parametrize("text", ["a\x00b", "\x00", "a\x1bb"])
def test_search_text_no_backend_can_store_is_422(api: Api, path: str, text: str) -> None:
    response = api.client.get(path, params={"search": text})
    assert (response.status_code, response.json()) == (422, refused("search", UNSTORABLE))


# What SQL LIKE, FTS5 and pg_trgm treat specially, and text that grows when casefolded.
ODD_SEARCHES = [
    '"',
    "'",
    "\\",
    "%",
    "_",
    '"""',
    "a\"b'c",
    "NEAR(a b)",
    "^abc",
    "ab*",
    "abc OR def",
    "ß" * 100,
    "🙂" * 100,
]


@pytest.mark.parametrize("path", ["/api/v1/services/", "/api/skills/"])
def test_search_text_that_sql_treats_specially_is_just_text(api: Api, path: str) -> None:
    for text in ODD_SEARCHES:
        response = api.client.get(path, params={"search": text})
        assert (response.status_code, response.json()) == (
            200,
            {"count": 0, "next": None, "previous": None, "results": []},
        ), text


def test_a_services_search_past_100_characters_is_422(api: Api) -> None:
    response = api.client.get("/api/v1/services/", params={"search": "а" * 101})
    assert (response.status_code, response.json()) == (
        422,
        refused("search", "Убедитесь, что это значение содержит не более 100 символов."),
    )


# Request ids and the one 500 line --------------------------------------------------------------------


def test_every_answer_carries_a_request_id(api: Api) -> None:
    kept = {"X-Request-ID": "client-chosen.id:42"}
    for response in (
        api.client.get("/healthz/", headers=kept),
        api.client.get("/api/v1/categories/?page=²", headers=kept),  # 404 from a route
        api.client.get("/api/v1/services/?search=%00", headers=kept),  # 422 from a middleware
    ):
        assert response.headers["x-request-id"] == "client-chosen.id:42"
    made = [
        api.client.get("/healthz/", headers=sent).headers["x-request-id"]
        for sent in ({}, {}, {"X-Request-ID": "a b"}, {"X-Request-ID": "x" * 129})
    ]
    assert all(re.fullmatch("[0-9a-f]{32}", made_id) for made_id in made) and len(set(made)) == len(made)


@pytest.fixture
def exploding(settings: Settings) -> Iterator[TestClient]:
    def explode(request: object) -> None:
        raise RuntimeError("secret internals")

    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    app.router.routes.append(Route("/boom/", explode))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_500_answers_the_catalogue_and_logs_one_line_without_what_the_client_sent(
    exploding: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = exploding.get("/boom/?password=hunter2", headers={"X-Request-ID": "req-500"})
    assert (response.status_code, response.json()) == (500, INTERNAL)
    assert response.headers["x-request-id"] == "req-500"
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.getMessage() for record in problems] == ["500 on GET /boom/ (request req-500): RuntimeError"]
    assert problems[0].exc_info is None  # the traceback is logged at debug level only
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue  # the test's own client, logging the URL it asked for
        assert "hunter2" not in record.getMessage() and "secret internals" not in record.getMessage()


# Validation messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "text"),
    [
        ("reviews/", {"rating": 9, "content": "Ок"}, "rating", "Убедитесь, что это значение меньше либо равно 5."),
        ("reviews/", {"rating": 0, "content": "Ок"}, "rating", "Убедитесь, что это значение больше либо равно 1."),
        ("reviews/", {"rating": 4.5, "content": "Ок"}, "rating", "Ожидается целое число."),
        # A rating is a JSON integer: pydantic's lax int read true as a 1-star review, "5" and 4.0 as 5 and 4.
        ("reviews/", {"rating": True, "content": "Ок"}, "rating", "Ожидается целое число."),
        ("reviews/", {"rating": "5", "content": "Ок"}, "rating", "Ожидается целое число."),
        ("reviews/", {"rating": 4.0, "content": "Ок"}, "rating", "Ожидается целое число."),
        ("", {"delivery_date": "2099-02-30"}, "delivery_date", NOT_A_DATE),
        ("", {"delivery_date": "завтра"}, "delivery_date", NOT_A_DATE),
        # The spec's YYYY-MM-DD only: pydantic's lax date read a Unix time at midnight as a date.
        ("", {"delivery_date": 4_102_444_800}, "delivery_date", NOT_A_DATE),
        ("", {"delivery_date": "2099-12-14T00:00:00+03:00"}, "delivery_date", NOT_A_DATE),
        ("", {"delivery_date": "20991214"}, "delivery_date", NOT_A_DATE),
        ("deliveries/", {}, "non_field_errors", NOTHING_DELIVERED),
        ("deliveries/", {"message": "  ", "file_ids": []}, "non_field_errors", NOTHING_DELIVERED),
    ],
    ids=[
        "rating-above-5",
        "rating-below-1",
        "rating-fraction",
        "rating-true",
        "rating-text",
        "rating-float",
        "february-30",
        "no-date",
        "unix-time",
        "date-and-time",
        "basic-iso-date",
        "empty-delivery",
        "blank-delivery",
    ],
)
def test_a_refused_field_is_told_in_russian(
    api: Api, world: World, path: str, body: dict[str, Any], field: str, text: str
) -> None:
    """pydantic's own words are English ("Input should be ..."): every refusal the API answers is Russian."""
    method = api.client.post if path else api.client.patch
    response = method(f"/api/v1/orders/{world.order}/{path}", headers=world.buyer, json=body)
    assert (response.status_code, response.json()) == (422, refused(field, text))


BLANK = "Это поле не может быть пустым."


def test_a_blank_text_is_told_empty_not_shorter_than_one_characters(api: Api, world: World) -> None:
    """A text of nothing but spaces (or none) in a field that must say something: pydantic's
    "at least 1 character" read "не менее 1 символов", which is no Russian."""
    service = world.deal.service["id"]
    for method, path, headers, body, field in [
        (
            "POST",
            "/api/auth/register/",
            {},
            {"username": " ", "email": "b@example.com", "password": "long-enough"},
            "username",
        ),
        ("POST", f"/api/v1/orders/{world.order}/cancel/", world.buyer, {"reason": "  "}, "reason"),
        ("PATCH", f"/api/v1/services/{service}/", world.creator, {"title": ""}, "title"),
    ]:
        answer = api.client.request(method, path, headers=headers, json=body)
        assert (answer.status_code, answer.json()) == (422, refused(field, BLANK)), path


def test_a_value_of_characters_its_field_refuses_is_told_which_it_takes(api: Api, world: World) -> None:
    registered = api.client.post(
        "/api/auth/register/", json={"username": "два слова", "email": "two@example.com", "password": "long-enough-1"}
    )
    assert (registered.status_code, registered.json()) == (
        422,
        refused(
            "username",
            "Введите правильное имя пользователя. Оно может содержать только буквы, цифры и знаки @/./+/-/_.",
        ),
    )
    patched = api.client.patch("/api/v1/users/me/", headers=world.buyer, json={"phone": "call me"})
    assert (patched.status_code, patched.json()) == (
        422,
        refused("phone", "Номер телефона может содержать только цифры, пробелы и знаки +, -, (, )."),
    )


def test_an_address_email_validator_refuses_is_told_in_russian(api: Api) -> None:
    """email-validator explains in English why ("It should have a period."): the API answers its own words."""
    for address in ["a@b", "a@localhost", '"a b"@example.com', "a@exa_mple.com"]:
        registered = api.client.post(
            "/api/auth/register/", json={"username": "mail_check", "email": address, "password": "long-enough-1"}
        )
        assert (registered.status_code, registered.json()) == (
            422,
            refused("email", "Введите правильный адрес электронной почты."),
        ), address


OUT_OF_RANGE = refused("non_field_errors", "Число в теле запроса вне допустимого диапазона.")
FAR_EXPONENTS = ["1e1000000000000000000", "-1E+9999999999999999999", "0e9999999999999999999", "1e-9999999999999999999"]


def post_raw(api: Api, method: str, path: str, headers: dict[str, str], body: str) -> tuple[int, Any]:
    response = api.client.request(method, path, content=body, headers=headers | {"Content-Type": "application/json"})
    return response.status_code, response.json()


def test_an_integer_past_pythons_digits_is_422_not_malformed(api: Api, world: World) -> None:
    """5,000 digits are JSON all the same (so not a 400), though no int() takes them."""
    service = world.deal.service["id"]
    for method, path, headers, field in [
        ("POST", "/api/auth/register/", {}, "username"),
        ("POST", "/api/v1/services/", world.creator, "delivery_time"),
        ("PATCH", f"/api/v1/services/{service}/", world.creator, "unknown"),
        ("POST", f"/api/v1/orders/{world.order}/reviews/", world.buyer, "rating"),
    ]:
        assert post_raw(api, method, path, headers, f'{{"{field}": {HUGE}}}') == (422, OUT_OF_RANGE), path


@pytest.mark.parametrize("number", FAR_EXPONENTS, ids=["far", "negative", "zero", "tiny"])
def test_money_with_an_exponent_past_decimals_is_422(api: Api, world: World, number: str) -> None:
    """Services read fractions as Decimal, which refuses such an exponent: a 500 it was, even in a
    field the model does not know. Elsewhere a fraction is a float (inf or 0.0), and its field says."""
    service = world.deal.service["id"]
    for method, path, field in [
        ("POST", "/api/v1/services/", "base_price"),
        ("PATCH", f"/api/v1/services/{service}/", "base_price"),
        ("PATCH", f"/api/v1/services/{service}/", "unknown"),
    ]:
        assert post_raw(api, method, path, world.creator, f'{{"{field}": {number}}}') == (422, OUT_OF_RANGE), path
    review = post_raw(api, "POST", f"/api/v1/orders/{world.order}/reviews/", world.buyer, f'{{"rating": {number}}}')
    assert review == (422, refused("rating", "Ожидается целое число."))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"reason": "Передумал", "reason": ""}', "reason"),
        ('{"reason": "", "reason": "Передумал"}', "reason"),
        ('{"reason": "Передумал", "note": {"x": 1, "x": 2}}', "x"),
        ('{"reason": "Передумал", "\\u0000": 1, "\\u0000": 2}', "non_field_errors"),
    ],
    ids=["last-blank", "first-blank", "nested", "unstorable-name"],
)
def test_a_json_name_given_twice_is_422_and_changes_nothing(api: Api, world: World, body: str, field: str) -> None:
    """RFC 8259 leaves a repeated name's meaning to each parser (the last value counted here, the first
    in others, such as a proxy that checked the body before us): the body is refused, not guessed at."""
    answer = post_raw(api, "POST", f"/api/v1/orders/{world.order}/cancel/", world.buyer, body)
    assert answer == (422, refused(field, REPEATED_NAME))
    order = api.client.get(f"/api/v1/orders/{world.order}/", headers=world.buyer).json()
    assert order["status"] == "pending"


def test_a_chat_frame_naming_its_message_twice_is_refused_and_the_socket_stays(api: Api, world: World) -> None:
    path = f"/ws/conversations/{world.conversation}/?token={world.deal.buyer['access']}"
    with api.client.websocket_connect(path) as socket:
        socket.send_text('{"message": "первое", "message": "второе"}')
        assert socket.receive_json() == {"error": 'Ожидается JSON-объект вида {"message": "текст"}.'}
        socket.send_text('{"message": "одно"}')
        assert socket.receive_json()["message"] == "одно"
        socket.close()
