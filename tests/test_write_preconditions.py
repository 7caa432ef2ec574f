"""`If-None-Match` on writes, against a real server: RFC 9110 §13.1.2 and §13.2.

A write to an object that carries an ETag (an order's commands, a service, a creator profile, a
portfolio item) is not performed when its `If-None-Match` is false: `*` on an object that exists,
or a tag naming the current version (weakly: `W/` counts for nothing; the version alone, as
`If-Match` compares it). It is 412 with the current version, and nothing is appended. It is
evaluated where `If-Match` is, after the checks of who may see (404) and who may act (403), and
after `If-Match` (§13.2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Api, version_of
from tests.orders_world import Deal, a_deal, place
from tests.servers import Server, served_fresh
from tests.test_api_portfolio import FORBIDDEN, NOT_FOUND, added_image, created, multipart
from ugc.config import Settings

pytestmark = pytest.mark.e2e

STALE = "Объект изменился с момента загрузки; обновите его и повторите запрос."
EXISTS = "Объект уже существует (If-None-Match: *); запрос не выполнен."
UNCHANGED = "Объект все еще в версии, названной в If-None-Match; запрос не выполнен."


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("write-preconditions-var")) as served:
        yield served


@pytest.fixture
def api(server: tuple[Server, Settings]) -> Iterator[Api]:
    running, settings = server
    with httpx.Client(base_url=running.url, timeout=30) as client:
        yield Api(client, settings)  # type: ignore[arg-type]


def assert_refused(response: Any, message: str, current: int) -> None:
    assert response.status_code == 412, response.text
    assert response.json() == {"error": message, "version": current}
    assert response.headers["etag"] == f'"{current}"'


def _history(api: Api, deal: Deal, order: int) -> list[Any]:
    answer = api.client.get(f"/api/v1/orders/{order}/history/", headers=deal.buyer["headers"])
    assert answer.status_code == 200, answer.text
    results: list[Any] = answer.json()["results"]
    return results


# Orders ------------------------------------------------------------------------------------------


def test_if_none_match_star_on_an_order_command_is_412_and_appends_nothing(api: Api) -> None:
    deal = a_deal(api)
    order = place(api, deal)["id"]
    url = f"/api/v1/orders/{order}/"
    before, history = api.client.get(url, headers=deal.buyer["headers"]), _history(api, deal, order)
    star = {"If-None-Match": "*"}
    for who, method, path, body in (
        (deal.creator, "POST", "accept/", {}),
        (deal.buyer, "POST", "cancel/", {"reason": "Передумал"}),
        (deal.buyer, "PATCH", "", {"requirements": "Другие"}),
    ):
        refused = api.client.request(method, url + path, headers=who["headers"] | star, json=body)
        assert_refused(refused, EXISTS, 1)
    after = api.client.get(url, headers=deal.buyer["headers"])
    assert (after.json(), after.headers["etag"]) == (before.json(), before.headers["etag"])
    assert _history(api, deal, order) == history and len(history) == 1


def test_an_order_command_whose_if_none_match_names_the_current_etag_is_412(api: Api) -> None:
    deal = a_deal(api)
    order = place(api, deal)["id"]
    url = f"/api/v1/orders/{order}/"
    etag = api.client.get(url, headers=deal.buyer["headers"]).headers["etag"]
    for named in (etag, f"W/{etag}", f'"other", {etag}', '"1"'):
        refused = api.client.post(f"{url}accept/", headers=deal.creator["headers"] | {"If-None-Match": named})
        assert_refused(refused, UNCHANGED, 1)
    assert len(_history(api, deal, order)) == 1
    # An older version, or a tag that names none, leaves the condition true: the command is performed.
    for other in ('"2", W/"3.0000000000000000"', '"abc", *'):
        edited = api.client.patch(
            url, headers=deal.buyer["headers"] | {"If-None-Match": other}, json={"requirements": other}
        )
        assert edited.status_code == 200, edited.text
    accepted = api.client.post(f"{url}accept/", headers=deal.creator["headers"] | {"If-None-Match": etag})
    assert accepted.status_code == 200 and accepted.json()["status"] == "in_progress", accepted.text
    assert len(_history(api, deal, order)) == 4


def test_an_outsiders_if_none_match_on_an_order_is_404_and_the_wrong_partys_403_never_412(api: Api) -> None:
    deal = a_deal(api)
    order = place(api, deal)["id"]
    url = f"/api/v1/orders/{order}/"
    etag = api.client.get(url, headers=deal.buyer["headers"]).headers["etag"]
    outsider = api.verified_user()
    cancel = {"reason": "Передумал"}
    for named in ("*", etag):
        refused = api.client.post(f"{url}cancel/", headers=outsider["headers"] | {"If-None-Match": named}, json=cancel)
        assert (refused.status_code, refused.json()) == (404, NOT_FOUND), refused.text
        assert "etag" not in refused.headers
        wrong_party = api.client.post(f"{url}accept/", headers=deal.buyer["headers"] | {"If-None-Match": named})
        assert (wrong_party.status_code, wrong_party.json()) == (403, FORBIDDEN), wrong_party.text
        assert "etag" not in wrong_party.headers
        # The order's parties, who may act, learn that the condition is false.
        assert_refused(
            api.client.post(f"{url}accept/", headers=deal.creator["headers"] | {"If-None-Match": named}),
            EXISTS if named == "*" else UNCHANGED,
            1,
        )
    assert len(_history(api, deal, order)) == 1


def test_if_match_is_evaluated_before_if_none_match_on_an_order(api: Api) -> None:
    deal = a_deal(api)
    order = place(api, deal)["id"]
    url = f"/api/v1/orders/{order}/accept/"
    creator = deal.creator["headers"]
    # If-Match false: its 412, whatever If-None-Match says.
    for none_match in ("*", '"1"', '"7"'):
        stale = api.client.post(url, headers=creator | {"If-Match": '"7"', "If-None-Match": none_match})
        assert_refused(stale, STALE, 1)
    # If-Match true: If-None-Match decides.
    assert_refused(api.client.post(url, headers=creator | {"If-Match": '"1"', "If-None-Match": "*"}), EXISTS, 1)
    assert_refused(api.client.post(url, headers=creator | {"If-Match": "*", "If-None-Match": '"1"'}), UNCHANGED, 1)
    accepted = api.client.post(url, headers=creator | {"If-Match": '"1"', "If-None-Match": '"7"'})
    assert accepted.status_code == 200 and accepted.json()["status"] == "in_progress", accepted.text


# Services, creator profiles, portfolio items -----------------------------------------------------


def test_a_service_patch_whose_if_none_match_names_the_current_etag_is_412_and_one_that_does_not_is_200(
    api: Api,
) -> None:
    deal = a_deal(api)
    url = f"/api/v1/services/{deal.service['id']}/"
    creator = deal.creator["headers"]
    seen = api.client.get(url)
    etag = seen.headers["etag"]
    for named in (etag, f"W/{etag}", f'"other", {etag}', '"1"', '"1.0000000000000000"', "*"):
        refused = api.client.patch(url, headers=creator | {"If-None-Match": named}, json={"title": "Другое"})
        assert_refused(refused, EXISTS if named == "*" else UNCHANGED, 1)
    assert_refused(api.client.delete(url, headers=creator | {"If-None-Match": etag}), UNCHANGED, 1)
    assert (api.client.get(url).json(), api.client.get(url).headers["etag"]) == (seen.json(), etag)

    edited = api.client.patch(url, headers=creator | {"If-None-Match": '"7", "abc"'}, json={"title": "Другое"})
    assert edited.status_code == 200 and edited.json()["title"] == "Другое" and version_of(edited) == 2
    # The tag read before the edit names a version that is no longer current: the condition holds.
    renamed = api.client.patch(url, headers=creator | {"If-None-Match": etag}, json={"title": "Третье"})
    assert renamed.status_code == 200 and version_of(renamed) == 3, renamed.text
    assert_refused(
        api.client.patch(url, headers=creator | {"If-Match": '"2"', "If-None-Match": "*"}, json={}), STALE, 3
    )
    assert_refused(
        api.client.patch(url, headers=creator | {"If-Match": '"3"', "If-None-Match": "*"}, json={}), EXISTS, 3
    )

    stranger = api.creator()["headers"]
    assert api.client.patch(url, headers=stranger | {"If-None-Match": "*"}, json={}).status_code == 403
    unknown = api.client.patch("/api/v1/services/999999/", headers=creator | {"If-None-Match": "*"}, json={})
    assert (unknown.status_code, unknown.json()) == (404, NOT_FOUND)


def test_a_creator_profile_and_portfolio_writes_honour_if_none_match(api: Api) -> None:
    creator = api.creator()
    mine = "/api/v1/users/me/creator-profile/"
    assert_refused(api.client.patch(mine, headers=creator["headers"] | {"If-None-Match": "*"}, json={}), EXISTS, 1)
    edited = api.client.patch(mine, headers=creator["headers"] | {"If-None-Match": '"7"'}, json={"experience": "2"})
    assert edited.status_code == 200 and version_of(edited) == 2, edited.text
    assert_refused(
        api.client.patch(mine, headers=creator["headers"] | {"If-None-Match": edited.headers["etag"]}, json={}),
        UNCHANGED,
        2,
    )
    without = api.verified_user()  # no profile: 404 before any 412
    assert api.client.patch(mine, headers=without["headers"] | {"If-None-Match": "*"}, json={}).status_code == 404

    item = created(api, creator)
    url = f"/api/portfolio/{item['id']}/"
    etag = api.client.get(url).headers["etag"]
    writes: tuple[Callable[[dict[str, str]], Any], ...] = (
        lambda named: api.client.patch(url, headers=creator["headers"] | named, files=multipart(title="Другой")),
        lambda named: api.client.put(url, headers=creator["headers"] | named, json={"title": "Другой"}),
        lambda named: api.client.delete(url, headers=creator["headers"] | named),
    )
    for write in writes:
        assert_refused(write({"If-None-Match": "*"}), EXISTS, 1)
        assert_refused(write({"If-None-Match": etag}), UNCHANGED, 1)
    assert api.client.get(url).headers["etag"] == etag
    image = added_image(api, creator, item["id"])
    image_url = f"/api/portfolio-images/{image['id']}/"
    refused = api.client.patch(image_url, headers=creator["headers"] | {"If-None-Match": "*"}, json={"caption": "x"})
    assert_refused(refused, EXISTS, 1)
    stranger = api.creator()
    assert api.client.delete(url, headers=stranger["headers"] | {"If-None-Match": "*"}).status_code == 403
    assert api.client.delete(url, headers=creator["headers"] | {"If-None-Match": '"9"'}).status_code == 204
