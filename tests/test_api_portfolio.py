"""Portfolios: items with a cover and ordered images, public to read, owner-only to write.

Images are checked by their bytes and served publicly under random keys; a creator's page with
`detail=true` embeds the creator's skills and portfolio.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import build_app
from projections.creator_skills import CreatorSkillsProjection
from projections.portfolio import PortfolioProjection
from projections.runner import ProjectionRunner
from readmodels.pages import PageRequest
from readmodels.portfolio import list_portfolio_images, list_portfolio_items
from readmodels.waiting import Progress
from tests.backends import DATA_KEY
from tests.conftest import Api, checked_client
from tests.plans import relations_read
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import runtime

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000") + b"\0" * 64
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 32
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
FORBIDDEN = {"detail": "У вас недостаточно прав для выполнения данного действия."}
NOT_FOUND = {"detail": "Страница не найдена."}
NOT_AN_IMAGE = "Загрузите правильное изображение. Файл, который вы загрузили, поврежден или не является изображением."


def create(api: Api, user: dict[str, Any], *, cover: tuple[str, bytes, str] | None = None, **fields: Any) -> Any:
    data = {"title": "Дизайн логотипа", "description": "Разработка логотипа для компании"} | fields
    files = {"cover_image": cover or ("logo.png", PNG, "image/png")}
    return api.client.post("/api/portfolio/", headers=user["headers"], data=data, files=files)


def created(api: Api, user: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = create(api, user, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def add_image(
    api: Api, user: dict[str, Any], item: int, *, image: tuple[str, bytes, str] | None = None, **fields: Any
) -> Any:
    data = {"portfolio_item": str(item), "caption": "Вариант", "order": "1"} | fields
    files = {"image": image or ("v.png", PNG, "image/png")}
    return api.client.post("/api/portfolio-images/", headers=user["headers"], data=data, files=files)


def added_image(api: Api, user: dict[str, Any], item: int, **kwargs: Any) -> dict[str, Any]:
    response = add_image(api, user, item, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def multipart(**fields: str) -> dict[str, tuple[None, str]]:
    """Text-only multipart parts (httpx sends `data` alone as urlencoded)."""
    return {name: (None, value) for name, value in fields.items()}


# A shared cache may keep a public image, but asks again (with its validators) before each use.
REVALIDATE = "public, no-cache"


def fetch(api: Api, url: str) -> Any:
    """GET an absolute media URL through the test client, without credentials."""
    assert url.startswith(f"{api.settings.public_url}/media/portfolio/"), url
    return api.client.get(url.removeprefix(api.settings.public_url))


def stored_files(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.media_dir.rglob("*") if path.is_file())


# Items -------------------------------------------------------------------------------------------


def test_a_creator_adds_an_item_in_the_spec_shape(api: Api) -> None:
    creator = api.creator()
    body = created(api, creator)
    assert body == {
        "id": body["id"],
        "title": "Дизайн логотипа",
        "description": "Разработка логотипа для компании",
        "cover_image": body["cover_image"],
        "images": [],
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "creator_profile": creator["profile"]["id"],
    }
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["updated_at"])
    assert "logo" not in body["cover_image"]
    assert api.client.get(f"/api/portfolio/{body['id']}/").json() == body


def test_the_cover_is_public_with_its_sniffed_type(api: Api) -> None:
    creator = api.creator()
    body = created(api, creator, cover=("photo.jpg", PNG, "image/jpeg"))
    response = fetch(api, body["cover_image"])
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("inline;")
    assert fetch(api, body["cover_image"] + "/").status_code == 200
    jpeg = created(api, creator, cover=("a.png", JPEG, "image/png"))
    assert fetch(api, jpeg["cover_image"]).headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    "cover",
    [
        ("doc.png", PDF, "image/png"),
        ("note.jpg", b"just text", "image/jpeg"),
        ("x.svg", b"<svg></svg>", "image/svg+xml"),
    ],
)
def test_a_cover_that_is_not_an_image_is_422_and_nothing_is_stored(api: Api, cover: tuple[str, bytes, str]) -> None:
    creator = api.creator()
    before = stored_files(api.settings)
    response = create(api, creator, cover=cover)
    assert response.status_code == 422
    assert response.json() == {"error": "Ошибка валидации данных.", "fields": {"cover_image": [NOT_AN_IMAGE]}}
    assert stored_files(api.settings) == before


def test_a_form_field_given_twice_is_422_and_nothing_is_stored(api: Api) -> None:
    """As a JSON body's name given twice (api/body.py): which of two values counts is a guess."""
    creator = api.creator()
    before = stored_files(api.settings)
    response = create(api, creator, title=["Первый", "Второй"])
    refused = {"title": ["Поле передано в теле запроса несколько раз; передайте одно."]}
    assert (response.status_code, response.json()) == (422, {"error": "Ошибка валидации данных.", "fields": refused})
    assert stored_files(api.settings) == before
    mine = api.client.get(f"/api/portfolio/?creator_profile_id={creator['profile']['id']}")
    assert mine.json()["count"] == 0


def test_missing_fields_are_reported_together_and_nothing_is_stored(api: Api) -> None:
    creator = api.creator()
    before = stored_files(api.settings)
    no_cover = api.client.post("/api/portfolio/", headers=creator["headers"], files=multipart(description="x"))
    assert no_cover.status_code == 422
    assert set(no_cover.json()["fields"]) == {"title", "cover_image"}
    blank_title = create(api, creator, title="   ")
    assert blank_title.status_code == 422 and list(blank_title.json()["fields"]) == ["title"]
    long_title = create(api, creator, title="x" * 201)
    assert long_title.status_code == 422 and list(long_title.json()["fields"]) == ["title"]
    empty = create(api, creator, cover=("e.png", b"", "image/png"))
    assert empty.status_code == 422 and list(empty.json()["fields"]) == ["cover_image"]
    assert stored_files(api.settings) == before


def test_item_writes_need_a_creator(api: Api) -> None:
    client = api.verified_user()
    before = stored_files(api.settings)
    response = create(api, client)
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert stored_files(api.settings) == before
    anonymous = api.client.post(
        "/api/portfolio/", data={"title": "x"}, files={"cover_image": ("a.png", PNG, "image/png")}
    )
    assert anonymous.status_code == 401
    as_json = api.client.post("/api/portfolio/", headers=api.creator()["headers"], json={"title": "x"})
    assert (as_json.status_code, as_json.json()) == (415, NOT_MULTIPART)
    assert as_json.headers["accept"] == as_json.headers["accept-post"] == "multipart/form-data"


def test_listing_filters_by_creator_newest_first_and_paginates(api: Api, clock: MovableClock) -> None:
    anna, boris = api.creator(), api.creator()
    first = created(api, anna, title="Первый")
    clock.advance(timedelta(seconds=1))
    second = created(api, anna, title="Второй")
    other = created(api, boris, title="Чужой")
    page = api.client.get("/api/portfolio/", params={"creator_profile_id": anna["profile"]["id"]}).json()
    assert page == {"count": 2, "next": None, "previous": None, "results": [second, first]}
    small = api.client.get("/api/portfolio/", params={"creator_profile_id": anna["profile"]["id"], "page_size": 1})
    assert small.json()["results"] == [second] and small.json()["next"] is not None
    last = api.client.get(small.json()["next"].removeprefix(api.settings.public_url)).json()
    assert last["results"] == [first] and last["next"] is None
    past = api.client.get("/api/portfolio/", params={"creator_profile_id": anna["profile"]["id"], "page": 3})
    assert past.status_code == 404
    everyone = api.client.get("/api/portfolio/?page_size=100").json()
    assert {first["id"], second["id"], other["id"]} <= {item["id"] for item in everyone["results"]}
    bad = api.client.get("/api/portfolio/?creator_profile_id=x")
    assert bad.status_code == 422 and list(bad.json()["fields"]) == ["creator_profile_id"]


def test_the_lists_totals_are_kept_not_counted(api: Api) -> None:
    """The totals of the items (everyone's, a creator's) and of all images are one kept row each, moved
    by every item and image stored or deleted: their statements read neither `portfolio_items` nor
    `portfolio_images` (a COUNT read every item of the catalogue: 337 buffers for 20,000)."""
    anna, boris = api.creator(), api.creator()
    viewer = api.verified_user()["headers"]

    def totals() -> tuple[int, int, int]:
        everyone = api.client.get("/api/portfolio/").json()["count"]
        hers = api.client.get("/api/portfolio/", params={"creator_profile_id": anna["profile"]["id"]}).json()
        images = api.client.get("/api/portfolio-images/", headers=viewer).json()["count"]
        return everyone, hers["count"], images

    items, _, images = totals()
    first, second = created(api, anna), created(api, anna)
    created(api, boris)
    kept = added_image(api, anna, first["id"])
    added_image(api, anna, first["id"])
    added_image(api, anna, second["id"])
    assert totals() == (items + 3, 2, images + 3)
    assert api.client.delete(f"/api/portfolio-images/{kept['id']}/", headers=anna["headers"]).status_code == 204
    assert api.client.delete(f"/api/portfolio/{second['id']}/", headers=anna["headers"]).status_code == 204
    assert totals() == (items + 2, 1, images + 1)
    assert api.client.get("/api/portfolio/", params={"creator_profile_id": 987654321}).json()["count"] == 0
    db = Database(api.settings.database_url)
    try:
        for query in (
            list_portfolio_items(PageRequest(1, 20)),
            list_portfolio_items(PageRequest(1, 20), anna["profile"]["id"]),
            list_portfolio_images(PageRequest(1, 20)),
        ):
            assert relations_read(db, *query.count) == {"portfolio_counts"}, query.count
    finally:
        db.close()


def test_without_a_filter_a_signed_in_caller_gets_their_own_portfolio(api: Api) -> None:
    anna = api.creator()
    mine = created(api, anna)
    created(api, api.creator())
    own = api.client.get("/api/portfolio/", headers=anna["headers"]).json()
    assert own["results"] == [mine]
    assert api.client.get("/api/portfolio/", headers=api.verified_user()["headers"]).json()["count"] == 0
    bad_token = api.client.get("/api/portfolio/", headers={"Authorization": "Bearer nonsense"})
    assert bad_token.status_code == 401


def test_unknown_items_are_404(api: Api) -> None:
    creator = api.creator()
    for number in (987654321, 2**70):
        assert api.client.get(f"/api/portfolio/{number}/").json() == NOT_FOUND
        for method in ("patch", "put", "delete"):
            response = api.client.request(
                method, f"/api/portfolio/{number}/", headers=creator["headers"], json={"title": "x"}
            )
            assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_the_owner_updates_an_item(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    patched = api.client.patch(
        f"/api/portfolio/{item['id']}/",
        headers=creator["headers"],
        files=multipart(title="Обновленный дизайн логотипа"),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() == item | {"title": "Обновленный дизайн логотипа", "updated_at": patched.json()["updated_at"]}
    as_json = api.client.patch(
        f"/api/portfolio/{item['id']}/", headers=creator["headers"], json={"description": "Новое"}
    )
    assert as_json.status_code == 200 and as_json.json()["description"] == "Новое"
    assert as_json.json()["title"] == "Обновленный дизайн логотипа"
    put = api.client.put(
        f"/api/portfolio/{item['id']}/",
        headers=creator["headers"],
        data={"title": "Третий", "description": "Обновленное описание"},
        files={"cover_image": ("new.gif", GIF, "image/gif")},
    )
    assert put.status_code == 200, put.text
    assert put.json()["title"] == "Третий" and put.json()["description"] == "Обновленное описание"
    assert put.json()["cover_image"] != item["cover_image"]
    assert fetch(api, item["cover_image"]).status_code == 404
    assert fetch(api, put.json()["cover_image"]).headers["content-type"] == "image/gif"
    no_title = api.client.put(f"/api/portfolio/{item['id']}/", headers=creator["headers"], json={"description": "x"})
    assert no_title.status_code == 422 and list(no_title.json()["fields"]) == ["title"]
    bad_cover = api.client.patch(
        f"/api/portfolio/{item['id']}/", headers=creator["headers"], files={"cover_image": ("x.png", PDF, "image/png")}
    )
    assert bad_cover.status_code == 422 and list(bad_cover.json()["fields"]) == ["cover_image"]
    assert api.client.get(f"/api/portfolio/{item['id']}/").json() == put.json()


NOT_MULTIPART = {"error": "Ожидается тело запроса в формате multipart/form-data."}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/merge-patch+json"]
)
def test_an_update_in_neither_a_form_nor_json_is_415_with_what_is_taken(api: Api, content_type: str) -> None:
    """RFC 9110 §15.5.16: a body in a media type the endpoint does not take is 415 (it was 400)."""
    creator = api.creator()
    item = created(api, creator)
    headers = creator["headers"] | {"Content-Type": content_type}
    refused = api.client.patch(f"/api/portfolio/{item['id']}/", headers=headers, content=b'{"title": "x"}')
    assert refused.status_code == 415, refused.text
    assert refused.json() == {
        "error": "Ожидается тело запроса в формате multipart/form-data или JSON (Content-Type: application/json)."
    }
    taken = "multipart/form-data, application/json"
    assert refused.headers["accept"] == refused.headers["accept-patch"] == taken
    assert api.client.get(f"/api/portfolio/{item['id']}/").json() == item


def test_an_update_without_a_content_type_is_read_as_json_as_every_json_body_is(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    url = f"/api/portfolio/{item['id']}/"
    patched = api.client.patch(url, headers=creator["headers"], content='{"title": "Без заголовка"}'.encode())
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Без заголовка"


def browser_form(file_field: str, **fields: str) -> dict[str, Any]:
    """The request a browser sends for an HTML form (`new FormData(form)`) whose file input was left
    empty: a part with `filename=""`, no bytes (httpx leaves the empty name out, so it is written here)."""
    parts = [
        f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n' for name, value in fields.items()
    ]
    parts.append(
        f'--b\r\nContent-Disposition: form-data; name="{file_field}"; filename=""\r\n'
        "Content-Type: application/octet-stream\r\n\r\n\r\n--b--\r\n"
    )
    return {"content": "".join(parts).encode(), "headers": {"Content-Type": "multipart/form-data; boundary=b"}}


def test_an_edit_form_whose_file_input_was_left_empty_keeps_the_image(api: Api) -> None:
    """A browser sends an empty file input as a part with no name and no bytes: no file chosen, as
    Django (the spec's origin) reads it. It answered 422 "Файл пуст." to every such edit."""
    creator = api.creator()
    item = created(api, creator)
    image = added_image(api, creator, item["id"])
    before = stored_files(api.settings)
    for method in ("PATCH", "PUT"):
        form = browser_form("cover_image", title=method, description="Без новой обложки")
        edited = api.client.request(
            method,
            f"/api/portfolio/{item['id']}/",
            content=form["content"],
            headers=creator["headers"] | form["headers"],
        )
        assert edited.status_code == 200, edited.text
        assert (edited.json()["title"], edited.json()["cover_image"]) == (method, item["cover_image"])
    form = browser_form("image", caption="Новая подпись")
    edited = api.client.patch(
        f"/api/portfolio-images/{image['id']}/", content=form["content"], headers=creator["headers"] | form["headers"]
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["caption"], edited.json()["image"]) == ("Новая подпись", image["image"])
    form = browser_form("cover_image", title="Без обложки", description="x")
    refused = api.client.post("/api/portfolio/", content=form["content"], headers=creator["headers"] | form["headers"])
    assert (refused.status_code, refused.json()["fields"]) == (422, {"cover_image": ["Обязательное поле."]})
    assert stored_files(api.settings) == before


def test_a_number_input_left_empty_is_as_absent_as_one_left_out(api: Api) -> None:
    """A browser sends `order=` for an empty number input; Django reads an optional field so sent as not
    sent. It answered 422 (the order's range). An empty caption is an empty caption; in JSON, "" is
    no order."""
    creator = api.creator()
    item = created(api, creator)
    added = add_image(api, creator, item["id"], order="", caption="")
    assert added.status_code == 201, added.text
    assert (added.json()["order"], added.json()["caption"]) == (0, "")
    moved = api.client.patch(
        f"/api/portfolio-images/{added.json()['id']}/", headers=creator["headers"], json={"order": 4, "caption": "Было"}
    )
    assert moved.status_code == 200, moved.text
    form = browser_form("image", order="", caption="")
    edited = api.client.patch(
        f"/api/portfolio-images/{added.json()['id']}/",
        content=form["content"],
        headers=creator["headers"] | form["headers"],
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["order"], edited.json()["caption"]) == (4, "")
    as_json = api.client.patch(
        f"/api/portfolio-images/{added.json()['id']}/", headers=creator["headers"], json={"order": ""}
    )
    assert as_json.status_code == 422 and list(as_json.json()["fields"]) == ["order"]


def test_someone_elses_item_is_403_for_every_write(api: Api) -> None:
    owner = api.creator()
    item = created(api, owner)
    before = stored_files(api.settings)
    for intruder in (api.creator(), api.verified_user()):
        for method in ("put", "patch"):
            response = api.client.request(
                method,
                f"/api/portfolio/{item['id']}/",
                headers=intruder["headers"],
                data={"title": "Взлом"},
                files={"cover_image": ("x.png", PNG, "image/png")},
            )
            assert (response.status_code, response.json()) == (403, FORBIDDEN)
        deleted = api.client.delete(f"/api/portfolio/{item['id']}/", headers=intruder["headers"])
        assert (deleted.status_code, deleted.json()) == (403, FORBIDDEN)
        added = add_image(api, intruder, item["id"])
        assert (added.status_code, added.json()) == (403, FORBIDDEN)
    assert stored_files(api.settings) == before
    assert api.client.get(f"/api/portfolio/{item['id']}/").json() == item
    assert api.client.delete(f"/api/portfolio/{item['id']}/").status_code == 401


def test_deleting_an_item_removes_it_with_its_images(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    image = added_image(api, creator, item["id"])
    response = api.client.delete(f"/api/portfolio/{item['id']}/", headers=creator["headers"])
    assert response.status_code == 204 and response.content == b""
    assert api.client.get(f"/api/portfolio/{item['id']}/").status_code == 404
    assert (
        api.client.get("/api/portfolio/", params={"creator_profile_id": creator["profile"]["id"]}).json()["count"] == 0
    )
    assert fetch(api, item["cover_image"]).status_code == 404
    assert fetch(api, image["image"]).status_code == 404
    images = api.client.get(f"/api/portfolio-images/?portfolio_item_id={item['id']}", headers=creator["headers"])
    assert images.json()["count"] == 0
    for method in ("patch", "delete"):
        gone = api.client.request(method, f"/api/portfolio-images/{image['id']}/", headers=creator["headers"], json={})
        assert (gone.status_code, gone.json()) == (404, NOT_FOUND)
    again = api.client.delete(f"/api/portfolio/{item['id']}/", headers=creator["headers"])
    assert again.status_code == 404
    late = add_image(api, creator, item["id"])
    assert late.status_code == 422 and list(late.json()["fields"]) == ["portfolio_item"]


# Images ------------------------------------------------------------------------------------------


def test_images_are_added_in_the_spec_shape_and_kept_in_order(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    third = added_image(api, creator, item["id"], caption="Вариант 3", order="3")
    first = added_image(api, creator, item["id"], caption="Вариант 1", order="1")
    second_a = added_image(api, creator, item["id"], caption="Вариант 2a", order="2")
    second_b = added_image(api, creator, item["id"], caption="Вариант 2b", order="2")
    assert first == {
        "id": first["id"],
        "image": first["image"],
        "caption": "Вариант 1",
        "order": 1,
        "portfolio_item": item["id"],
    }
    ordered = [first, second_a, second_b, third]
    listing = api.client.get(f"/api/portfolio-images/?portfolio_item_id={item['id']}", headers=api.user()["headers"])
    assert listing.json() == {"count": 4, "next": None, "previous": None, "results": ordered}
    embedded = api.client.get(f"/api/portfolio/{item['id']}/").json()["images"]
    assert embedded == [{k: v for k, v in image.items() if k != "portfolio_item"} for image in ordered]
    fetched = fetch(api, first["image"])
    assert fetched.status_code == 200 and fetched.content == PNG and fetched.headers["content-type"] == "image/png"
    assert fetched.headers["x-content-type-options"] == "nosniff"


def test_caption_and_order_have_defaults(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    response = api.client.post(
        "/api/portfolio-images/",
        headers=creator["headers"],
        data={"portfolio_item": str(item["id"])},
        files={"image": ("a.jpg", JPEG, "image/jpeg")},
    )
    assert response.status_code == 201
    assert response.json()["caption"] == "" and response.json()["order"] == 0


def test_the_image_list_needs_a_token(api: Api) -> None:
    response = api.client.get("/api/portfolio-images/")
    assert (response.status_code, response.json()) == (401, {"detail": "Учетные данные не были предоставлены."})
    bad = api.client.get("/api/portfolio-images/?portfolio_item_id=-1", headers=api.verified_user()["headers"])
    assert bad.status_code == 422 and list(bad.json()["fields"]) == ["portfolio_item_id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"portfolio_item": "987654321"}, "portfolio_item"),
        ({"portfolio_item": "abc"}, "portfolio_item"),
        ({"portfolio_item": "0"}, "portfolio_item"),
        ({"portfolio_item": "-1"}, "portfolio_item"),
        ({"portfolio_item": str(2**63)}, "portfolio_item"),
        ({"portfolio_item": "1_0"}, "portfolio_item"),
        ({"order": "-1"}, "order"),
        ({"order": "first"}, "order"),
        # Form text is a number as ASCII digits alone; int() would read each of these.
        ({"order": "1_0"}, "order"),
        ({"order": "+5"}, "order"),
        ({"order": " 3 "}, "order"),
        ({"caption": "x" * 256}, "caption"),
        ({"image": ("doc.png", PDF, "image/png")}, "image"),
        ({"image": ("photo.jpg", b"not a photo", "image/jpeg")}, "image"),
    ],
)
def test_bad_image_fields_are_422_and_nothing_is_stored(api: Api, change: dict[str, Any], field: str) -> None:
    creator = api.creator()
    item = created(api, creator)
    before = stored_files(api.settings)
    change = dict(change)
    image = change.pop("image", None)
    response = add_image(api, creator, item["id"], image=image, **change)
    assert response.status_code == 422, response.text
    assert list(response.json()["fields"]) == [field]
    if field == "image":
        assert response.json()["fields"]["image"] == [NOT_AN_IMAGE]
    assert stored_files(api.settings) == before


def test_a_missing_image_is_422(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    response = api.client.post(
        "/api/portfolio-images/", headers=creator["headers"], files=multipart(portfolio_item=str(item["id"]))
    )
    assert response.status_code == 422 and list(response.json()["fields"]) == ["image"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_the_owner_updates_an_image_and_the_order_follows(api: Api, method: str) -> None:
    creator = api.creator()
    item = created(api, creator)
    first = added_image(api, creator, item["id"], order="1")
    second = added_image(api, creator, item["id"], order="2")
    response = api.client.request(
        method,
        f"/api/portfolio-images/{first['id']}/",
        headers=creator["headers"],
        files=multipart(caption="Новое описание", order="3"),
    )
    assert response.status_code == 200, response.text
    moved = first | {"caption": "Новое описание", "order": 3}
    assert response.json() == moved
    assert [image["id"] for image in api.client.get(f"/api/portfolio/{item['id']}/").json()["images"]] == [
        second["id"],
        first["id"],
    ]
    replaced = api.client.request(
        method,
        f"/api/portfolio-images/{second['id']}/",
        headers=creator["headers"],
        files={"image": ("b.gif", GIF, "image/gif")},
    )
    assert replaced.status_code == 200
    assert replaced.json() == second | {"image": replaced.json()["image"]}
    assert fetch(api, second["image"]).status_code == 404
    assert fetch(api, replaced.json()["image"]).headers["content-type"] == "image/gif"
    as_json = api.client.request(
        method, f"/api/portfolio-images/{second['id']}/", headers=creator["headers"], json={"order": 0}
    )
    assert as_json.status_code == 200 and as_json.json()["order"] == 0
    bad = api.client.request(
        method, f"/api/portfolio-images/{second['id']}/", headers=creator["headers"], json={"order": -5}
    )
    assert bad.status_code == 422 and list(bad.json()["fields"]) == ["order"]


def test_someone_elses_image_is_403_for_every_write(api: Api) -> None:
    owner = api.creator()
    item = created(api, owner)
    image = added_image(api, owner, item["id"])
    for intruder in (api.creator(), api.verified_user()):
        for method in ("put", "patch"):
            response = api.client.request(
                method,
                f"/api/portfolio-images/{image['id']}/",
                headers=intruder["headers"],
                files=multipart(caption="x"),
            )
            assert (response.status_code, response.json()) == (403, FORBIDDEN)
        deleted = api.client.delete(f"/api/portfolio-images/{image['id']}/", headers=intruder["headers"])
        assert (deleted.status_code, deleted.json()) == (403, FORBIDDEN)
    listing = api.client.get(f"/api/portfolio-images/?portfolio_item_id={item['id']}", headers=owner["headers"])
    assert listing.json()["results"] == [image]


def test_deleting_an_image(api: Api) -> None:
    creator = api.creator()
    item = created(api, creator)
    kept = added_image(api, creator, item["id"], order="1")
    removed = added_image(api, creator, item["id"], order="2")
    response = api.client.delete(f"/api/portfolio-images/{removed['id']}/", headers=creator["headers"])
    assert response.status_code == 204 and response.content == b""
    assert [i["id"] for i in api.client.get(f"/api/portfolio/{item['id']}/").json()["images"]] == [kept["id"]]
    assert fetch(api, removed["image"]).status_code == 404
    assert fetch(api, kept["image"]).status_code == 200
    unknown = api.client.delete("/api/portfolio-images/987654321/", headers=creator["headers"])
    assert (unknown.status_code, unknown.json()) == (404, NOT_FOUND)


def test_a_browser_revalidating_a_public_image_gets_304_without_the_bytes(api: Api) -> None:
    """A cached image past its max-age is asked for again with its validators: 304, not every byte again."""
    cover = created(api, api.creator())["cover_image"]
    first = fetch(api, cover)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for validators in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        [("If-None-Match", '"other"'), ("If-None-Match", etag)],  # a list may come in several lines
        {"If-Modified-Since": modified},
    ):
        again = api.client.get(cover.removeprefix(api.settings.public_url), headers=validators)
        assert (again.status_code, again.content) == (304, b""), validators
        assert again.headers["etag"] == etag and again.headers["cache-control"] == REVALIDATE
        assert "content-length" not in again.headers or again.headers["content-length"] == "0"
    for changed in (
        {"If-None-Match": '"other"'},
        {"If-None-Match": '"other"', "If-Modified-Since": modified},  # If-None-Match decides alone
        {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
        {"If-Modified-Since": "not a date"},
        {"If-Modified-Since": "Tue, 01 Jan 10000 00:00:00 GMT"},  # a year no calendar holds: it was a 500
    ):
        again = api.client.get(cover.removeprefix(api.settings.public_url), headers=changed)
        assert (again.status_code, again.content) == (200, PNG), changed


def test_a_public_image_is_served_in_parts_one_or_several(api: Api) -> None:
    """A viewer resuming or sampling a large image asks for ranges: one is the part with its
    Content-Range, several are their `multipart/byteranges` (both declared: api/openapi.py)."""
    cover = created(api, api.creator())["cover_image"].removeprefix(api.settings.public_url)
    one = api.client.get(cover, headers={"Range": "bytes=0-7"})
    assert (one.status_code, one.content, one.headers["content-range"]) == (206, PNG[:8], f"bytes 0-7/{len(PNG)}")
    assert one.headers["content-type"] == "image/png" and one.headers["accept-ranges"] == "bytes"
    several = api.client.get(cover, headers={"Range": "bytes=0-3,8-11"})
    assert several.status_code == 206 and several.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert PNG[:4] in several.content and PNG[8:12] in several.content and "content-range" not in several.headers


def test_a_cached_image_is_revalidated_each_time_so_a_deleted_one_is_404_at_once(api: Api) -> None:
    """A shared cache may keep a public image but must ask again before serving it (`no-cache`): a
    live image costs a 304, and the same conditional request after the item's or the image's
    deletion is 404, where a max-age let the cache serve the deleted picture for an hour."""
    creator = api.creator()
    item = created(api, creator)
    image = added_image(api, creator, item["id"])
    kept = created(api, creator)
    cached = {}
    for url in (item["cover_image"], image["image"], kept["cover_image"]):
        first = fetch(api, url)
        assert (first.status_code, first.headers["cache-control"]) == (200, REVALIDATE), url
        cached[url] = {"If-None-Match": first.headers["etag"], "If-Modified-Since": first.headers["last-modified"]}
        again = api.client.get(url.removeprefix(api.settings.public_url), headers=cached[url])
        assert (again.status_code, again.headers["cache-control"]) == (304, REVALIDATE), url

    deleted_image = api.client.delete(f"/api/portfolio-images/{image['id']}/", headers=creator["headers"])
    assert deleted_image.status_code == 204
    revalidated = api.client.get(image["image"].removeprefix(api.settings.public_url), headers=cached[image["image"]])
    assert (revalidated.status_code, revalidated.json()) == (404, NOT_FOUND)
    deleted_item = api.client.delete(f"/api/portfolio/{item['id']}/", headers=creator["headers"])
    assert deleted_item.status_code == 204
    revalidated = api.client.get(
        item["cover_image"].removeprefix(api.settings.public_url), headers=cached[item["cover_image"]]
    )
    assert (revalidated.status_code, revalidated.json()) == (404, NOT_FOUND)
    live = api.client.get(
        kept["cover_image"].removeprefix(api.settings.public_url), headers=cached[kept["cover_image"]]
    )
    assert live.status_code == 304


def test_unknown_or_malformed_keys_are_404(api: Api) -> None:
    # A NUL (`%00`) is a key PostgreSQL cannot even be asked about (its text holds none): a 500 it was.
    for bad in ("nonexistent", "..%2F..%2Fetc%2Fpasswd", "A" * 32, ".incoming", "%00", "A" * 31 + "%00", "%01%7F"):
        response = api.client.get(f"/media/portfolio/{bad}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_a_private_file_is_never_served_as_portfolio_media(api: Api) -> None:
    user = api.verified_user()
    before = set(stored_files(api.settings))
    private = api.client.post(
        "/api/v1/files/upload/", headers=user["headers"], files={"file": ("p.png", PNG, "image/png")}
    )
    assert private.status_code == 201
    (new,) = set(stored_files(api.settings)) - before
    assert api.client.get(f"/media/portfolio/{new.name}").status_code == 404


# The size limit ----------------------------------------------------------------------------------

SMALL_LIMIT = 1024


@pytest.fixture(scope="module")
def small_limit(settings: Settings) -> Iterator[Api]:
    """The app of this module's database with UGC_MAX_UPLOAD_BYTES set to 1 KiB."""
    app = build_app(lambda: runtime(dataclasses.replace(settings, max_upload_bytes=SMALL_LIMIT), clock=MovableClock()))
    with checked_client(app) as client:
        yield Api(client, settings)


def test_an_image_over_the_limit_is_413_and_nothing_is_stored(small_limit: Api) -> None:
    creator = small_limit.creator()
    item = created(small_limit, creator)
    before = stored_files(small_limit.settings)
    big = PNG + b"\0" * SMALL_LIMIT
    response = add_image(small_limit, creator, item["id"], image=("big.png", big, "image/png"))
    assert response.status_code == 413
    assert stored_files(small_limit.settings) == before
    cover = create(small_limit, creator, cover=("big.png", big, "image/png"))
    assert cover.status_code == 413
    assert stored_files(small_limit.settings) == before


# The creator's page ------------------------------------------------------------------------------


def test_the_creator_page_with_detail_embeds_skills_and_portfolio(api: Api) -> None:
    creator = api.creator()
    skills = wait_for_skills(api)
    skill = api.client.post(
        "/api/creator-skills/", headers=creator["headers"], json={"skill": skills["Figma"]["id"], "level": 5}
    ).json()
    item = created(api, creator)
    image = added_image(api, creator, item["id"], caption="Главная", order="1")
    url = f"/api/v1/creators/{creator['profile']['id']}/"
    plain = api.client.get(url).json()
    assert "skills" not in plain and "portfolio" not in plain
    detail = api.client.get(url, params={"detail": "true"}).json()
    assert detail == plain | {"skills": [skill], "portfolio": [api.client.get(f"/api/portfolio/{item['id']}/").json()]}
    assert detail["portfolio"][0]["images"] == [{k: v for k, v in image.items() if k != "portfolio_item"}]
    assert detail["skills"][0] == {
        "id": skill["id"],
        "skill": {"id": skills["Figma"]["id"], "name": "Figma", "description": skills["Figma"]["description"]},
        "level": 5,
        "creator_profile": creator["profile"]["id"],
    }
    empty = api.creator()
    bare = api.client.get(f"/api/v1/creators/{empty['profile']['id']}/?detail=true").json()
    assert bare["skills"] == [] and bare["portfolio"] == []
    assert api.client.get(url, params={"detail": "false"}).json() == plain
    unclear = api.client.get(url, params={"detail": "yes"})
    assert (unclear.status_code, unclear.json()["fields"]) == (422, {"detail": ["Допустимые значения: true, false."]})


def wait_for_skills(api: Api) -> dict[str, dict[str, Any]]:
    """The reference skills by name, once the projection has applied them (they load at start-up)."""
    deadline = time.monotonic() + 5
    while True:
        results = api.client.get("/api/skills/?page_size=100").json()["results"]
        if any(skill["name"] == "Figma" for skill in results) or time.monotonic() > deadline:
            return {skill["name"]: skill for skill in results}
        time.sleep(0.02)


# Rebuilds ----------------------------------------------------------------------------------------


def test_rebuilt_portfolio_and_creator_skills_equal_the_live_tables(api: Api, app_client: TestClient) -> None:
    """Replaying the log from scratch gives the very rows the live projections wrote."""
    creator = api.creator()
    skills = wait_for_skills(api)
    api.client.post(
        "/api/creator-skills/bulk_update/",
        headers=creator["headers"],
        json=[{"skill_id": skills["Figma"]["id"], "level": 2}, {"skill_id": skills["Blender"]["id"], "level": 4}],
    )
    item = created(api, creator)
    image = added_image(api, creator, item["id"], order="2")
    added_image(api, creator, item["id"], order="1")
    api.client.patch(f"/api/portfolio-images/{image['id']}/", headers=creator["headers"], json={"order": 0})
    api.client.delete(f"/api/portfolio/{created(api, creator)['id']}/", headers=creator["headers"])
    db = app_client.app.state.services.db  # type: ignore[attr-defined]
    tables = (
        "portfolio_items",
        "portfolio_images",
        "portfolio_media",
        "portfolio_counts",
        "creator_skills",
        "creator_skill_counts",
    )
    live = {name: rows(db, name) for name in tables}
    stores = EventStores(api.settings.database_url, data_key=DATA_KEY)
    try:
        projections = [PortfolioProjection(), CreatorSkillsProjection()]
        runner = ProjectionRunner(db, stores, projections, Progress())
        runner.register()
        for projection in projections:
            runner.reset(projection)
        runner.catch_up()
    finally:
        stores.close()
    assert {name: rows(db, name) for name in tables} == live


def rows(db: Database, table: str) -> list[dict[str, Any]]:
    order = {"portfolio_media": "key"}.get(table, "creator_profile_id" if table.endswith("_counts") else "id")
    with db.transaction() as cur:
        return cur.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
