"""Conditional reads of JSON answers: a copy asked for again with its ETag is 304 without a body.

RFC 9110 §13.1.2: `If-None-Match` is compared weakly (`W/"x"` matches `"x"`), takes a list of tags in
one or several header lines, and `*` matches any current answer. Only a GET's or HEAD's 200 that
carries an ETag is revalidated, on the answer the caller would have got: an outsider's guess is 404.
A write's `If-None-Match` is a precondition instead (tests/test_write_preconditions.py).
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, version_of
from tests.orders_world import a_deal, order_in, place
from tests.test_api_portfolio import created

NOT_FOUND = {"detail": "Страница не найдена."}


def _reads(api: Api) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """Every kind of JSON read that answers an ETag, with the headers its caller reads it with."""
    deal = a_deal(api)
    order = place(api, deal)["id"]
    profile = deal.creator["profile"]["id"]
    item = created(api, deal.creator)["id"]
    urls = {
        f"/api/v1/orders/{order}/": deal.buyer["headers"],
        f"/api/v1/services/{deal.service['id']}/": {},
        f"/api/services/{deal.service['id']}/": {},
        f"/api/v1/creators/{profile}/": {},
        f"/api/v1/creators/{profile}/?detail=true": {},
        f"/api/portfolio/{item}/": {},
    }
    return urls, {"deal": deal, "order": order}


def _assert_not_modified(answer: Any, etag: str, what: object) -> None:
    assert (answer.status_code, answer.content) == (304, b""), (what, answer.status_code, answer.text)
    assert answer.headers["etag"] == etag, what
    assert answer.headers["cache-control"] == "no-store", what
    assert "content-type" not in answer.headers and "content-length" not in answer.headers, what
    assert answer.headers["x-request-id"], what


def test_a_read_asked_for_again_with_its_etag_is_304_without_a_body(api: Api) -> None:
    urls, _ = _reads(api)
    for url, headers in urls.items():
        first = api.client.get(url, headers=headers)
        assert first.status_code == 200, (url, first.text)
        etag = first.headers["etag"]
        for asked in (
            {"If-None-Match": etag},
            {"If-None-Match": f"W/{etag}"},  # a proxy's gzip weakens the tag; weak comparison
            {"If-None-Match": f'"other", W/"1.0000000000000000", {etag}'},
            {"If-None-Match": "*"},
        ):
            _assert_not_modified(api.client.get(url, headers=headers | asked), etag, (url, asked))
        several_lines = [*headers.items(), ("If-None-Match", '"other"'), ("If-None-Match", etag)]
        _assert_not_modified(api.client.get(url, headers=several_lines), etag, (url, "two lines"))
        _assert_not_modified(api.client.head(url, headers=headers | {"If-None-Match": etag}), etag, (url, "HEAD"))
        head = api.client.head(url, headers=headers | {"If-None-Match": '"other"'})
        assert (head.status_code, head.headers["etag"]) == (200, etag), url


def test_a_tag_that_does_not_match_or_cannot_be_read_answers_the_body(api: Api) -> None:
    urls, _ = _reads(api)
    for url, headers in urls.items():
        first = api.client.get(url, headers=headers)
        etag = first.headers["etag"]
        version = f'"{version_of(first)}"'  # the version alone names no answer's bytes
        for asked in ('"other"', f'W/"other", {version}', etag.strip('"'), f"{etag}x", "", "*, " + '"other"'):
            again = api.client.get(url, headers=headers | {"If-None-Match": asked})
            assert (again.status_code, again.content, again.headers["etag"]) == (200, first.content, etag), (url, asked)


def test_after_a_change_the_old_tag_gets_the_new_answer_and_its_new_tag(api: Api) -> None:
    urls, made = _reads(api)
    deal = made["deal"]
    service = f"/api/v1/services/{deal.service['id']}/"
    before = api.client.get(service)
    edited = api.client.patch(service, headers=deal.creator["headers"], json={"title": "Новое название"})
    assert edited.status_code == 200, edited.text
    after = api.client.get(service, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.json()["title"] == "Новое название"
    assert after.headers["etag"] == edited.headers["etag"] != before.headers["etag"]
    _assert_not_modified(
        api.client.get(service, headers={"If-None-Match": after.headers["etag"]}), after.headers["etag"], service
    )

    # A review changes the creator's rating, not the profile's version: the tag moves all the same.
    profile = f"/api/v1/creators/{deal.creator['profile']['id']}/"
    seen = api.client.get(profile)
    completed = order_in(api, deal, "completed")
    reviewed = api.client.post(
        f"/api/v1/orders/{completed}/reviews/", headers=deal.buyer["headers"], json={"content": "Хорошо", "rating": 5}
    )
    assert reviewed.status_code == 201, reviewed.text
    again = api.client.get(profile, headers={"If-None-Match": seen.headers["etag"]})
    assert again.status_code == 200 and again.json()["rating"] == 5
    assert version_of(again) == version_of(seen) and again.headers["etag"] != seen.headers["etag"]


def test_an_outsider_with_a_guessed_tag_gets_404_never_a_304(api: Api) -> None:
    urls, made = _reads(api)
    url = f"/api/v1/orders/{made['order']}/"
    etag = api.client.get(url, headers=made["deal"].buyer["headers"]).headers["etag"]
    outsider = api.verified_user()
    for asked in (etag, "*"):
        for method in (api.client.get, api.client.head):
            refused = method(url, headers=outsider["headers"] | {"If-None-Match": asked})
            assert refused.status_code == 404, (asked, method)
        refused = api.client.get(url, headers=outsider["headers"] | {"If-None-Match": asked})
        assert refused.json() == NOT_FOUND and "etag" not in refused.headers
        assert api.client.get(url, headers={"If-None-Match": asked}).status_code == 401


def test_a_write_is_never_304(api: Api) -> None:
    """A 304 is for reads. A write whose `If-None-Match` holds is answered with its body and new tag;
    one whose `If-None-Match` is false is 412 (tests/test_write_preconditions.py, against a real
    server; here its body is held to the document); a POST that creates, which takes no condition, is
    answered whatever its `If-None-Match`."""
    deal = a_deal(api)
    service = f"/api/v1/services/{deal.service['id']}/"
    etag = api.client.get(service).headers["etag"]
    for named in ("*", etag):
        refused = api.client.patch(service, headers=deal.creator["headers"] | {"If-None-Match": named}, json={})
        assert (refused.status_code, refused.json()["version"], refused.headers["etag"]) == (412, 1, '"1"'), named
    edited = api.client.patch(
        service, headers=deal.creator["headers"] | {"If-None-Match": '"7"'}, json={"title": "Другое"}
    )
    assert edited.status_code == 200 and edited.json()["title"] == "Другое" and edited.headers["etag"] != etag
    body = {"service_id": deal.service["id"], "requirements": "Обзор", "delivery_date": "2099-01-01"}
    placed = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"] | {"If-None-Match": "*"}, json=body)
    assert placed.status_code == 201 and placed.json()["id"], placed.text
