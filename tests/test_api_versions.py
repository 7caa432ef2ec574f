"""ETag and If-Match on services, creator profiles, portfolio items and images, as on orders.

Every answer that shows one of them carries `ETag: "<version>.<digest>"`, whose digest moves with
whatever else the body shows (a rating, `is_late`, a portfolio); a write with `If-Match` naming the
current version goes through, one naming an older version is 412 with the current version and
changes nothing. A caller who may not write the object gets 404/403 before any 412.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.conftest import Api, new_client, version_of
from tests.orders_world import a_deal, order_in, place
from tests.test_api_portfolio import GIF, added_image, created, multipart, stored_files
from ugc.clock import MovableClock
from ugc.config import Settings

EXISTS = "Объект уже существует (If-None-Match: *); запрос не выполнен."
STALE = "Объект изменился с момента загрузки; обновите его и повторите запрос."
MISSING = "Объекта еще нет, а If-Match называет его версию; запрос не выполнен."


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
    assert service.status_code == 201 and version_of(service) == 1
    url = f"/api/v1/services/{service.json()['id']}/"
    assert version_of(api.client.get(url)) == 1
    assert version_of(api.client.get(url.replace("/v1", ""))) == 1  # the legacy shape, the same version

    edited = api.client.patch(url, headers=creator["headers"] | matching(1), json={"title": "Новое название"})
    assert edited.status_code == 200 and version_of(edited) == 2
    assert edited.json()["title"] == "Новое название"
    assert version_of(api.client.get(url)) == 2  # the remembered answer moved with the version

    assert_stale(api.client.patch(url, headers=creator["headers"] | matching(1), json={"title": "Старое"}), 2)
    assert_stale(api.client.delete(url, headers=creator["headers"] | matching(1)), 2)
    assert api.client.get(url).json()["title"] == "Новое название" and api.client.get(url).json()["is_active"]

    assert api.client.delete(url, headers=creator["headers"] | matching(2)).status_code == 204
    assert version_of(api.client.get(url)) == 3 and not api.client.get(url).json()["is_active"]


def test_without_if_match_a_service_write_needs_no_version(api: Api) -> None:
    creator = api.creator()
    service = api.service(creator)
    url = f"/api/v1/services/{service['id']}/"
    for title in ("Первое", "Второе"):
        edited = api.client.patch(url, headers=creator["headers"], json={"title": title})
        assert edited.status_code == 200 and edited.json()["title"] == title
    assert version_of(edited) == 3
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
    assert weak.status_code == 200 and version_of(weak) == 2


def test_an_if_match_list_holds_when_any_of_its_tags_names_the_current_version(api: Api) -> None:
    """RFC 9110 §13.1.1: `If-Match: "3", "4"` holds at version 3 or 4, as do several header lines."""
    creator = api.creator()
    service = api.service(creator)
    url = f"/api/v1/services/{service['id']}/"
    listed = api.client.patch(url, headers=creator["headers"] | {"If-Match": '"7", "1"'}, json={"title": "Второе"})
    assert listed.status_code == 200 and version_of(listed) == 2
    mixed = api.client.patch(url, headers=creator["headers"] | {"If-Match": '"abc", ,W/"2"'}, json={"title": "Третье"})
    assert mixed.status_code == 200 and version_of(mixed) == 3
    lines = [*creator["headers"].items(), ("If-Match", '"1"'), ("If-Match", '"3"')]
    two_lines = api.client.patch(url, headers=lines, json={"title": "Четвертое"})
    assert two_lines.status_code == 200 and version_of(two_lines) == 4
    assert_stale(api.client.patch(url, headers=creator["headers"] | {"If-Match": '"2", "3"'}, json={"title": "x"}), 4)
    assert api.client.get(url).json()["title"] == "Четвертое"


# Creator profiles --------------------------------------------------------------------------------


def test_a_creator_profile_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    user = api.verified_user()
    mine = "/api/v1/users/me/creator-profile/"
    profile = api.client.post(mine, headers=user["headers"], json={"specialization": "Видео"})
    assert profile.status_code == 201 and version_of(profile) == 1
    public = f"/api/v1/creators/{profile.json()['id']}/"
    assert version_of(api.client.get(public)) == 1
    assert version_of(api.client.get(public, params={"detail": "true"})) == 1

    edited = api.client.patch(mine, headers=user["headers"] | matching(1), json={"experience": "5 лет"})
    assert edited.status_code == 200 and version_of(edited) == 2
    assert_stale(api.client.patch(mine, headers=user["headers"] | matching(1), json={"experience": "1 год"}), 2)
    assert api.client.get(public).json()["experience"] == "5 лет"
    assert version_of(api.client.get(public)) == 2


def test_a_creator_profile_created_under_if_none_match_star_is_412_once_one_exists(api: Api) -> None:
    """The one creating POST whose URL names what it creates (`/users/me/creator-profile/`, the profile
    PATCHed there too): `If-None-Match: *` asks to create it only if there is none (RFC 9110 §13.1.2),
    and is 412 once there is one, as on its PATCH; without the header a second create stays the 409."""
    user = api.verified_user()
    mine = "/api/v1/users/me/creator-profile/"
    first = api.client.post(mine, headers=user["headers"] | {"If-None-Match": "*"}, json={"specialization": "Видео"})
    assert first.status_code == 201 and version_of(first) == 1
    again = api.client.post(mine, headers=user["headers"] | {"If-None-Match": "*"}, json={"specialization": "Фото"})
    assert (again.status_code, again.json()) == (412, {"error": EXISTS, "version": 1})
    assert again.headers["etag"] == '"1"'
    plain = api.client.post(mine, headers=user["headers"], json={"specialization": "Фото"})
    assert (plain.status_code, plain.json()) == (409, {"error": "Профиль креатора уже существует."})
    assert api.client.get(f"/api/v1/creators/{first.json()['id']}/").json()["specialization"] == "Видео"


def test_a_creator_profile_is_not_created_under_an_if_match(api: Api) -> None:
    """`If-Match` asks that the profile exist at one of the named versions, `*` at any (RFC 9110
    §13.1.1): while there is none, each is false, so the POST creates nothing and is 412, with no
    version to name; a client that meant to edit its copy learns that there is no profile behind it."""
    user = api.verified_user()
    mine = "/api/v1/users/me/creator-profile/"
    for condition in ('"1"', "*", 'W/"2", "3"', '"abc"'):
        refused = api.client.post(mine, headers=user["headers"] | {"If-Match": condition}, json={"specialization": "В"})
        assert (refused.status_code, refused.json()) == (412, {"error": MISSING}), condition
        assert "etag" not in refused.headers
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).json()["has_creator_profile"] is False
    created = api.client.post(mine, headers=user["headers"], json={"specialization": "Видео"})
    assert created.status_code == 201
    current = api.client.post(mine, headers=user["headers"] | matching(1), json={"specialization": "Фото"})
    assert (current.status_code, current.json()) == (409, {"error": "Профиль креатора уже существует."})


def test_without_a_profile_an_if_match_is_404_not_412(api: Api) -> None:
    user = api.verified_user()
    answer = api.client.patch(
        "/api/v1/users/me/creator-profile/", headers=user["headers"] | matching(1), json={"experience": "x"}
    )
    assert answer.status_code == 404


# The account -------------------------------------------------------------------------------------


def test_the_account_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    """`PATCH /users/me/` takes `If-Match` as every other PATCH does: two devices editing one profile
    no longer overwrite each other's edit unseen."""
    user = api.verified_user()
    me = "/api/v1/users/me/"
    read = api.client.get(me, headers=user["headers"])
    assert version_of(read) == 2  # registered, verified
    assert api.client.get(me, headers=user["headers"] | {"If-None-Match": read.headers["etag"]}).status_code == 304

    edited = api.client.patch(me, headers=user["headers"] | matching(2), json={"bio": "Снимаю видео"})
    assert edited.status_code == 200 and version_of(edited) == 3
    assert_stale(api.client.patch(me, headers=user["headers"] | matching(2), json={"bio": "Старое"}), 3)
    exists = api.client.patch(me, headers=user["headers"] | {"If-None-Match": "*"}, json={"bio": "Старое"})
    assert (exists.status_code, exists.json()["version"]) == (412, 3)
    current = api.client.get(me, headers=user["headers"])
    assert current.json()["bio"] == "Снимаю видео" and version_of(current) == 3
    assert api.client.patch(me, headers=user["headers"], json={"bio": "Без условий"}).status_code == 200


def test_a_resent_verification_mail_moves_the_accounts_version(api: Api) -> None:
    """Every event of the account moves its version, so the tag a client holds is the one a write checks."""
    user = api.user()
    me = "/api/v1/users/me/"
    assert version_of(api.client.get(me, headers=user["headers"])) == 1
    assert api.client.post("/api/auth/resend-verification/", headers=user["headers"]).status_code == 200
    assert version_of(api.client.get(me, headers=user["headers"])) == 2


# Portfolio items ---------------------------------------------------------------------------------


def test_a_portfolio_item_carries_its_version_and_a_stale_if_match_changes_nothing(api: Api) -> None:
    creator = api.creator()
    response = api.client.post(
        "/api/portfolio/",
        headers=creator["headers"],
        data={"title": "Логотип"},
        files={"cover_image": ("c.gif", GIF, "image/gif")},
    )
    assert response.status_code == 201 and version_of(response) == 1
    url = f"/api/portfolio/{response.json()['id']}/"
    assert version_of(api.client.get(url)) == 1

    patched = api.client.patch(url, headers=creator["headers"] | matching(1), files=multipart(title="Второй"))
    assert patched.status_code == 200 and version_of(patched) == 2
    put = api.client.put(url, headers=creator["headers"] | matching(2), json={"title": "Третий"})
    assert put.status_code == 200 and version_of(put) == 3

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
    assert response.status_code == 201 and version_of(response) == 1
    url = f"/api/portfolio-images/{response.json()['id']}/"

    patched = api.client.patch(url, headers=creator["headers"] | matching(1), json={"caption": "Второй"})
    assert patched.status_code == 200 and version_of(patched) == 2
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


# What else an answer shows -----------------------------------------------------------------------


def test_a_review_moves_the_etags_that_show_the_rating_and_an_if_match_read_before_it_still_holds(api: Api) -> None:
    """The creator's rating is joined from the reviews: it changes while the service's and profile's
    versions stay, so a client revalidating its copy with the old ETag must get the new rating. An
    edit sent with the ETag read before the review is not refused: no edit came between."""
    deal = a_deal(api)
    order = order_in(api, deal, "completed")
    service = f"/api/v1/services/{deal.service['id']}/"
    legacy = f"/api/services/{deal.service['id']}/"
    profile = f"/api/v1/creators/{deal.creator['profile']['id']}/"
    detailed = f"{profile}?detail=true"
    seen = {url: api.client.get(url) for url in (service, legacy, profile, detailed)}
    assert seen[service].json()["creator"]["rating"] == 0 and seen[profile].json()["rating"] == 0
    for url, answer in seen.items():  # the same body, the same tag
        assert api.client.get(url).headers["etag"] == answer.headers["etag"], url

    reviewed = api.client.post(
        f"/api/v1/orders/{order}/reviews/", headers=deal.buyer["headers"], json={"content": "Хорошо", "rating": 4}
    )
    assert reviewed.status_code == 201, reviewed.text

    again = {url: api.client.get(url, headers={"If-None-Match": seen[url].headers["etag"]}) for url in seen}
    assert again[service].status_code == 200 and again[service].json()["creator"]["rating"] == 4
    for url in (profile, detailed):
        assert again[url].status_code == 200 and again[url].json()["rating"] == 4, url
    for url in (service, profile, detailed):
        assert again[url].headers["etag"] != seen[url].headers["etag"], url
        assert version_of(again[url]) == version_of(seen[url]) == 1, url
    # The legacy shape shows no rating: its body, and so its tag, stay as they were (the copy is current).
    assert again[legacy].status_code == 304 and again[legacy].headers["etag"] == seen[legacy].headers["etag"]

    mine = "/api/v1/users/me/creator-profile/"
    edited = api.client.patch(
        mine, headers=deal.creator["headers"] | {"If-Match": seen[profile].headers["etag"]}, json={"experience": "3"}
    )
    assert edited.status_code == 200 and version_of(edited) == 2 and edited.json()["rating"] == 4
    renamed = api.client.patch(
        service, headers=deal.creator["headers"] | {"If-Match": seen[service].headers["etag"]}, json={"title": "Новое"}
    )
    assert renamed.status_code == 200 and version_of(renamed) == 2
    assert renamed.headers["etag"] == api.client.get(service).headers["etag"]  # the answer is what a read shows
    # The tag read before the edit names version 1: stale now, whatever its digest.
    stale = {"If-Match": seen[service].headers["etag"]}
    assert_stale(api.client.patch(service, headers=deal.creator["headers"] | stale, json={"title": "x"}), 2)
    bad_digest = {"If-Match": '"2.xyz"'}
    assert_stale(api.client.patch(service, headers=deal.creator["headers"] | bad_digest, json={"title": "x"}), 2)


def test_a_portfolio_item_added_moves_the_etag_of_the_detailed_creator_profile(api: Api) -> None:
    creator = api.creator()
    detailed = f"/api/v1/creators/{creator['profile']['id']}/?detail=true"
    before = api.client.get(detailed)
    created(api, creator)
    after = api.client.get(detailed, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and len(after.json()["portfolio"]) == 1
    assert version_of(after) == version_of(before) and after.headers["etag"] != before.headers["etag"]


def test_an_order_that_falls_late_answers_a_new_etag(settings: Settings) -> None:
    """`is_late` follows the date, not the order's log: the tag moves with it."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        due = date.today() + timedelta(days=2)
        order = place(api, deal, delivery_date=due.isoformat())["id"]
        url = f"/api/v1/orders/{order}/"
        before = client.get(url, headers=deal.buyer["headers"])
        assert before.json()["is_late"] is False
        clock.advance(timedelta(days=4))
        signed_in = {"Authorization": f"Bearer {api.login(deal.buyer['username'])['access']}"}  # the old token expired
        after = client.get(url, headers=signed_in | {"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200 and after.json()["is_late"] is True
        assert version_of(after) == version_of(before) == 1 and after.headers["etag"] != before.headers["etag"]


def _service_body(api: Api) -> dict[str, Any]:
    category = api.client.get("/api/v1/categories/").json()["results"][0]["id"]
    return {
        "title": "Видеообзор",
        "description": "Обзор товара",
        "category_id": category,
        "base_price": 1000,
        "delivery_time": 7,
    }
