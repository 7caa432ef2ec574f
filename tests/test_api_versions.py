"""ETag and If-Match on services, creator profiles, portfolio items and images, as on orders.

Every answer that shows one of them carries `ETag: "<version>"`; a write with `If-Match` naming
the current version goes through, one naming an older version is 412 with the current version
and changes nothing. A caller who may not write the object gets 404/403 before any 412.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.test_api_portfolio import GIF, added_image, created, multipart, stored_files

STALE = "Объект изменился с момента загрузки; обновите его и повторите запрос."


def matching(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


def assert_stale(response: Any, current: int) -> None:
    assert response.status_code == 412, response.text
    assert response.json() == {"error": STALE, "version": current}
    assert response.headers["etag"] == f'"{current}"'


# Services ----------------------------------------------------------------------------------------


def test_a_service_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    creator = api.creator()
    service = api.client.post("/api/v1/services/", headers=creator["headers"], json=_service_body(api))
    assert service.status_code == 201 and service.headers["etag"] == '"1"'
    url = f"/api/v1/services/{service.json()['id']}/"
    assert api.client.get(url).headers["etag"] == '"1"'
    assert api.client.get(url.replace("/v1", "")).headers["etag"] == '"1"'  # the legacy shape, the same version

    edited = api.client.patch(url, headers=creator["headers"] | matching(1), json={"title": "Новое название"})
    assert edited.status_code == 200 and edited.headers["etag"] == '"2"'
    assert edited.json()["title"] == "Новое название"
    assert api.client.get(url).headers["etag"] == '"2"'  # the remembered answer moved with the version

    assert_stale(api.client.patch(url, headers=creator["headers"] | matching(1), json={"title": "Старое"}), 2)
    assert_stale(api.client.delete(url, headers=creator["headers"] | matching(1)), 2)
    assert api.client.get(url).json()["title"] == "Новое название" and api.client.get(url).json()["is_active"]

    assert api.client.delete(url, headers=creator["headers"] | matching(2)).status_code == 204
    assert api.client.get(url).headers["etag"] == '"3"' and not api.client.get(url).json()["is_active"]


def test_without_if_match_a_service_write_needs_no_version(api: Api) -> None:
    creator = api.creator()
    service = api.service(creator)
    url = f"/api/v1/services/{service['id']}/"
    for title in ("Первое", "Второе"):
        edited = api.client.patch(url, headers=creator["headers"], json={"title": title})
        assert edited.status_code == 200 and edited.json()["title"] == title
    assert edited.headers["etag"] == '"3"'
    assert api.client.patch(url, headers=creator["headers"] | {"If-Match": "*"}, json={"title": "Т"}).status_code == 200


def test_a_stranger_gets_403_and_an_unknown_service_404_before_any_412(api: Api) -> None:
    creator, stranger = api.creator(), api.creator()
    service = api.service(creator)
    url = f"/api/v1/services/{service['id']}/"
    assert api.client.patch(url, headers=stranger["headers"] | matching(7), json={"title": "x"}).status_code == 403
    assert api.client.delete(url, headers=stranger["headers"] | matching(7)).status_code == 403
    unknown = api.client.patch("/api/v1/services/999999/", headers=creator["headers"] | matching(1), json={})
    assert unknown.status_code == 404


def test_an_if_match_that_names_no_version_matches_none(api: Api) -> None:
    """412 with the current version, as a stale one, and only after the checks of who may write."""
    creator, stranger = api.creator(), api.creator()
    service = api.service(creator)
    url = f"/api/v1/services/{service['id']}/"
    for unreadable in ('"abc"', '"0"', '"2", "3"', '"1,2"', '*, "2"', "", "W/", ","):
        refused = api.client.patch(url, headers=creator["headers"] | {"If-Match": unreadable}, json={"title": "x"})
        assert_stale(refused, 1)
    assert api.client.patch(url, headers=stranger["headers"] | {"If-Match": '"abc"'}, json={}).status_code == 403
    unknown = api.client.patch("/api/v1/services/999999/", headers=creator["headers"] | {"If-Match": '"abc"'}, json={})
    assert unknown.status_code == 404
    weak = api.client.patch(url, headers=creator["headers"] | {"If-Match": 'W/"1"'}, json={"title": "Слабый"})
    assert weak.status_code == 200 and weak.headers["etag"] == '"2"'


def test_an_if_match_list_holds_when_any_of_its_tags_names_the_current_version(api: Api) -> None:
    """RFC 9110 §13.1.1: `If-Match: "3", "4"` holds at version 3 or 4, as do several header lines."""
    creator = api.creator()
    service = api.service(creator)
    url = f"/api/v1/services/{service['id']}/"
    listed = api.client.patch(url, headers=creator["headers"] | {"If-Match": '"7", "1"'}, json={"title": "Второе"})
    assert listed.status_code == 200 and listed.headers["etag"] == '"2"'
    mixed = api.client.patch(url, headers=creator["headers"] | {"If-Match": '"abc", ,W/"2"'}, json={"title": "Третье"})
    assert mixed.status_code == 200 and mixed.headers["etag"] == '"3"'
    lines = [*creator["headers"].items(), ("If-Match", '"1"'), ("If-Match", '"3"')]
    two_lines = api.client.patch(url, headers=lines, json={"title": "Четвертое"})
    assert two_lines.status_code == 200 and two_lines.headers["etag"] == '"4"'
    assert_stale(api.client.patch(url, headers=creator["headers"] | {"If-Match": '"2", "3"'}, json={"title": "x"}), 4)
    assert api.client.get(url).json()["title"] == "Четвертое"


# Creator profiles --------------------------------------------------------------------------------


def test_a_creator_profile_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    user = api.verified_user()
    mine = "/api/v1/users/me/creator-profile/"
    profile = api.client.post(mine, headers=user["headers"], json={"specialization": "Видео"})
    assert profile.status_code == 201 and profile.headers["etag"] == '"1"'
    public = f"/api/v1/creators/{profile.json()['id']}/"
    assert api.client.get(public).headers["etag"] == '"1"'
    assert api.client.get(public, params={"detail": "true"}).headers["etag"] == '"1"'

    edited = api.client.patch(mine, headers=user["headers"] | matching(1), json={"experience": "5 лет"})
    assert edited.status_code == 200 and edited.headers["etag"] == '"2"'
    assert_stale(api.client.patch(mine, headers=user["headers"] | matching(1), json={"experience": "1 год"}), 2)
    assert api.client.get(public).json()["experience"] == "5 лет"
    assert api.client.get(public).headers["etag"] == '"2"'


def test_without_a_profile_an_if_match_is_404_not_412(api: Api) -> None:
    user = api.verified_user()
    answer = api.client.patch(
        "/api/v1/users/me/creator-profile/", headers=user["headers"] | matching(1), json={"experience": "x"}
    )
    assert answer.status_code == 404


# Portfolio items ---------------------------------------------------------------------------------


def test_a_portfolio_item_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    creator = api.creator()
    response = api.client.post(
        "/api/portfolio/",
        headers=creator["headers"],
        data={"title": "Логотип"},
        files={"cover_image": ("c.gif", GIF, "image/gif")},
    )
    assert response.status_code == 201 and response.headers["etag"] == '"1"'
    url = f"/api/portfolio/{response.json()['id']}/"
    assert api.client.get(url).headers["etag"] == '"1"'

    patched = api.client.patch(url, headers=creator["headers"] | matching(1), files=multipart(title="Второй"))
    assert patched.status_code == 200 and patched.headers["etag"] == '"2"'
    put = api.client.put(url, headers=creator["headers"] | matching(2), json={"title": "Третий"})
    assert put.status_code == 200 and put.headers["etag"] == '"3"'

    files_before = stored_files(api.settings)
    stale_put = api.client.put(
        url,
        headers=creator["headers"] | matching(2),
        data={"title": "Старый"},
        files={"cover_image": ("n.gif", GIF, "image/gif")},
    )
    assert_stale(stale_put, 3)
    assert stored_files(api.settings) == files_before  # the refused upload's bytes are gone again
    assert_stale(api.client.patch(url, headers=creator["headers"] | matching(1), json={"title": "Старый"}), 3)
    assert_stale(api.client.delete(url, headers=creator["headers"] | matching(2)), 3)
    assert api.client.get(url).json()["title"] == "Третий"

    assert api.client.delete(url, headers=creator["headers"] | matching(3)).status_code == 204
    assert api.client.get(url).status_code == 404


def test_a_stranger_gets_403_on_an_item_before_any_412(api: Api) -> None:
    creator, stranger = api.creator(), api.creator()
    url = f"/api/portfolio/{created(api, creator)['id']}/"
    assert api.client.patch(url, headers=stranger["headers"] | matching(9), json={"title": "x"}).status_code == 403
    assert api.client.delete(url, headers=stranger["headers"] | matching(9)).status_code == 403


# Portfolio images --------------------------------------------------------------------------------


def test_a_portfolio_image_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    response = api.client.post(
        "/api/portfolio-images/",
        headers=creator["headers"],
        data={"portfolio_item": str(item["id"]), "caption": "Первый"},
        files={"image": ("i.gif", GIF, "image/gif")},
    )
    assert response.status_code == 201 and response.headers["etag"] == '"1"'
    url = f"/api/portfolio-images/{response.json()['id']}/"

    patched = api.client.patch(url, headers=creator["headers"] | matching(1), json={"caption": "Второй"})
    assert patched.status_code == 200 and patched.headers["etag"] == '"2"'
    assert_stale(api.client.put(url, headers=creator["headers"] | matching(1), json={"caption": "Старый"}), 2)
    assert_stale(api.client.delete(url, headers=creator["headers"] | matching(1)), 2)
    listed = api.client.get(
        "/api/portfolio-images/", headers=creator["headers"], params={"portfolio_item_id": item["id"]}
    )
    assert [image["caption"] for image in listed.json()["results"]] == ["Второй"]

    assert api.client.delete(url, headers=creator["headers"] | matching(2)).status_code == 204
    assert api.client.get(f"/api/portfolio/{item['id']}/").json()["images"] == []


def test_an_image_write_by_a_stranger_is_403_before_any_412(api: Api) -> None:
    creator, stranger = api.creator(), api.creator()
    image = added_image(api, creator, created(api, creator)["id"])
    url = f"/api/portfolio-images/{image['id']}/"
    assert api.client.patch(url, headers=stranger["headers"] | matching(9), json={"caption": "x"}).status_code == 403
    assert api.client.delete(url, headers=stranger["headers"] | matching(9)).status_code == 403


def _service_body(api: Api) -> dict[str, Any]:
    category = api.client.get("/api/v1/categories/").json()["results"][0]["id"]
    return {
        "title": "Видеообзор",
        "description": "Обзор товара",
        "category_id": category,
        "base_price": 1000,
        "delivery_time": 7,
    }
