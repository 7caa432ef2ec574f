"""`Accept`: a request that accepts none of the types a route answers in is 406, as DRF answers it,
before anything is done; a missing, empty or unreadable `Accept`, `*/*` and `application/*` are served."""

from __future__ import annotations

import pytest

from api.negotiation import acceptable
from tests.conftest import Api
from tests.test_api_files import uploaded

NOT_ACCEPTABLE = {"detail": "Не удалось удовлетворить условию в заголовке запроса Accept."}
# What browsers send when they navigate, and what Prometheus sends when it scrapes.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
PROMETHEUS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    "accept",
    [
        "application/xml",
        "text/html",
        "text/*",
        "image/*, text/csv",
        "application/json; q=0",
        "application/json;q=0, */*",
        "*/*;q=0",
    ],
)
def test_a_json_read_that_accepts_no_json_is_406(api: Api, accept: str) -> None:
    """It was answered in JSON whatever `Accept` said."""
    refused = api.client.get("/api/v1/categories/", headers={"Accept": accept})
    assert (refused.status_code, refused.json()) == (406, NOT_ACCEPTABLE), accept
    assert refused.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "application/*",
        "application/json",
        "APPLICATION/JSON; charset=utf-8",
        "text/html, application/json;q=0.1",
        "*/*;q=0.1, text/html",
        "*/*, application/json;q=0.5",
        BROWSER,
        ";;;",  # no range that reads: disregarded, as RFC 9110 §12.5.1 allows
        "application/json;q=abc, text/html;q=2, */*",  # ranges whose q is no qvalue are passed over
    ],
)
def test_a_json_read_that_accepts_json_in_any_form_is_served(api: Api, accept: str | None) -> None:
    answered = api.client.get("/api/v1/categories/", headers={} if accept is None else {"Accept": accept})
    assert answered.status_code == 200, (accept, answered.text)
    assert answered.headers["content-type"] == "application/json"


def test_a_command_that_accepts_no_json_is_406_and_changes_nothing(api: Api) -> None:
    user = api.verified_user()
    headers = user["headers"] | {"Accept": "text/html"}
    refused = api.client.patch("/api/v1/users/me/", headers=headers, json={"first_name": "Непринятый"})
    assert (refused.status_code, refused.json()) == (406, NOT_ACCEPTABLE)
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).json()["first_name"] != "Непринятый"


def test_406_comes_before_401_as_in_drf(api: Api) -> None:
    refused = api.client.get("/api/v1/orders/", headers={"Accept": "application/xml"})
    assert (refused.status_code, refused.json()) == (406, NOT_ACCEPTABLE)


def test_pages_and_metrics_answer_in_their_own_types(api: Api) -> None:
    assert api.client.get("/api/docs/", headers={"Accept": BROWSER}).status_code == 200
    assert api.client.get("/api/docs/", headers={"Accept": "text/html"}).status_code == 200
    refused = api.client.get("/api/docs/", headers={"Accept": "application/json"})
    assert (refused.status_code, refused.json()) == (406, NOT_ACCEPTABLE)
    assert api.client.get("/metrics", headers={"Accept": PROMETHEUS}).status_code == 200
    assert api.client.get("/api/schema/", headers={"Accept": "application/json, */*"}).status_code == 200


def test_a_download_is_served_whatever_accept_says(api: Api) -> None:
    """A stored file is of the type it is: there is no other representation to choose."""
    user = api.verified_user()
    download = f"/api/v1/files/{uploaded(api, user, b'plain text')['id']}/download/"
    served = api.client.get(download, headers=user["headers"] | {"Accept": "application/xml"})
    assert served.status_code == 200 and served.content == b"plain text"


@pytest.mark.parametrize(
    ("accept", "offered", "expected"),
    [
        ("image/webp, image/png;q=0", "image/*", True),  # a type among those offered is taken
        ("text/html", "image/*", False),
        ("image/*;q=0", "image/*", False),
        ("text/plain;version=0.0.4;q=0.5", "text/plain", True),
        ("text/*;q=0, text/plain", "text/plain", True),  # the most specific range decides
        ("text/plain;q=0, text/*", "text/plain", False),
        ("*/json", "application/json", True),  # no media range: disregarded
    ],
)
def test_the_most_specific_range_decides(accept: str, offered: str, expected: bool) -> None:
    assert acceptable(accept, offered) is expected
