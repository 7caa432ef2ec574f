"""The HTTP conventions every route shares: errors, slashes, pagination, schema, health."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from api.openapi import Operation, endpoint, openapi_document
from tests.conftest import Api, refused_id
from ugc.platform.idle_check import IDLE_BEFORE_CHECK
from ugc.platform.numbers import MAX_ID


def test_unknown_url_is_the_spec_404(api: Api) -> None:
    response = api.client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Страница не найдена."}


def test_paths_work_with_and_without_the_trailing_slash(api: Api) -> None:
    user = api.user()
    assert api.client.get("/api/v1/users/me", headers=user["headers"]).status_code == 200
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).status_code == 200
    response = api.client.post(
        "/api/auth/token", json={"username": user["username"], "password": user["password"]}, follow_redirects=False
    )
    assert response.status_code == 200


def test_wrong_method_is_405(api: Api) -> None:
    assert api.client.delete("/api/v1/users/me/").status_code == 405


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xef\xbb\xbf", "application/json"),  # a UTF-8 byte order mark, skipped, before nothing
        # Python's parser takes these literals, which JSON has not (RFC 8259 §6): not a 422 about a value.
        (b'{"username": NaN}', "application/json"),
        (b'{"username": "anna", "first_name": "A", "x": Infinity}', "application/json"),
        (b'{"username": -Infinity}', "application/json"),
    ],
)
def test_unparseable_bodies_are_400(api: Api, content: bytes, content_type: str) -> None:
    response = api.client.post("/api/auth/register/", content=content, headers={"content-type": content_type})
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        (b"username=a", "application/x-www-form-urlencoded", "Ожидается тело запроса в формате JSON"),
        (b"\xff\xfe", "application/json", "Тело JSON принимается только в кодировке UTF-8"),
    ],
)
def test_bodies_in_another_media_type_or_encoding_are_415(
    api: Api, content: bytes, content_type: str, error: str
) -> None:
    response = api.client.post("/api/auth/register/", content=content, headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["error"].startswith(error)


def test_an_oversized_body_is_413(api: Api) -> None:
    body = b'{"username": "' + b"a" * (2 << 20) + b'"}'
    response = api.client.post("/api/auth/register/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_reference_data_is_loaded_on_first_start(api: Api) -> None:
    categories = api.client.get("/api/v1/categories/").json()
    assert categories["count"] >= 5
    assert set(categories["results"][0]) == {"id", "name", "slug"}
    skills = api.client.get("/api/skills/").json()
    assert skills["count"] >= 10
    photoshop = next(s for s in skills["results"] if s["name"] == "Photoshop")
    assert photoshop["description"] == "Редактирование изображений"
    assert api.client.get(f"/api/skills/{photoshop['id']}/").json() == photoshop
    assert api.client.get("/api/skills/999999/").status_code == 404


def test_skill_search_is_case_insensitive_in_cyrillic(api: Api) -> None:
    found = api.client.get("/api/skills/", params={"search": "ВЕКТОРНАЯ"}).json()
    assert [s["name"] for s in found["results"]] == ["Illustrator"]
    assert api.client.get("/api/skills/", params={"search": "photo"}).json()["count"] == 1
    assert api.client.get("/api/skills/", params={"search": "100%_"}).json()["count"] == 0


def test_pagination_links_and_edges(api: Api) -> None:
    total = api.client.get("/api/skills/").json()["count"]
    first = api.client.get("/api/skills/?page_size=5").json()
    assert first["count"] == total and len(first["results"]) == 5 and first["previous"] is None
    assert first["next"].startswith(f"{api.settings.public_url}/api/skills/?") and "page=2" in first["next"]
    # A client's own Host header never reaches the links (a cache in front could hand them to anyone).
    spoofed = api.client.get("/api/skills/?page_size=5", headers={"Host": "evil.example"}).json()
    assert spoofed["next"] == first["next"]
    last_page = -(-total // 5)
    last = api.client.get(f"/api/skills/?page_size=5&page={last_page}").json()
    assert last["next"] is None and len(last["results"]) == total - 5 * (last_page - 1)
    assert "page=" in last["previous"] or last_page == 2
    assert api.client.get(f"/api/skills/?page_size=5&page={last_page + 1}").status_code == 404
    assert api.client.get("/api/skills/?page=0").status_code == 404
    assert api.client.get("/api/skills/?page=abc").status_code == 404
    capped = api.client.get("/api/skills/?page_size=1000").json()
    assert len(capped["results"]) == min(total, 100)
    ids = [
        s["id"]
        for p in range(1, last_page + 1)
        for s in api.client.get(f"/api/skills/?page_size=5&page={p}").json()["results"]
    ]
    assert len(ids) == len(set(ids)) == total


def test_openapi_schema_describes_the_routes(api: Api) -> None:
    schema = api.client.get("/api/schema/").json()
    assert schema["openapi"].startswith("3.1")
    assert "post" in schema["paths"]["/api/auth/register/"]
    assert {"get", "patch"} <= set(schema["paths"]["/api/v1/users/me/"])
    assert "/api/v1/creators/{id}/" in schema["paths"]
    upload = schema["paths"]["/api/v1/files/upload/"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["file"] == {"type": "string", "format": "binary"}
    refs = [
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        for ops in schema["paths"].values()
        for op in ops.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    for ref in refs:
        assert ref.split("/")[-1] in schema["components"]["schemas"]


def test_every_reference_in_the_schema_resolves(api: Api) -> None:
    schema = api.client.get("/api/schema/").json()
    names = set(schema["components"]["schemas"])
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert refs and refs <= names
    # pydantic qualifies a name with its module only when two models share it (two `MessageOut`s did).
    assert not [name for name in names if "__" in name]


def test_two_response_models_of_one_name_are_refused() -> None:
    from api.schemas import auth, messaging

    class MessageOut(auth.VerifyEmailOut):
        pass

    routes = [
        endpoint("POST", "/a/", _unused, Operation("a", response=MessageOut)),
        endpoint("GET", "/b/", _unused, Operation("b", response=messaging.MessageOut)),
    ]
    with pytest.raises(ValueError, match="two models named MessageOut"):
        openapi_document(routes, title="t", version="1")


async def _unused(request: object) -> None:
    raise AssertionError


def test_the_schema_declares_what_the_routes_answer(api: Api) -> None:
    schema = api.client.get("/api/schema/").json()
    paths, models = schema["paths"], schema["components"]["schemas"]

    def answer(path: str, method: str = "get", status: str = "200") -> Any:
        return paths[path][method]["responses"][status]

    def model(path: str, method: str = "get", status: str = "200") -> Any:
        ref = answer(path, method, status)["content"]["application/json"]["schema"]["$ref"]
        return models[ref.split("/")[-1]]

    assert set(model("/api/v1/orders/{id}/history/")["properties"]) == {"count", "next", "previous", "results"}
    assert set(model("/api/v1/orders/{id}/deliveries/")["properties"]) == {"count", "next", "previous", "results"}
    assert "application/json" not in answer("/api/v1/files/{id}/download/")["content"]
    assert model("/api/v1/orders/{id}/")["properties"]["total_price"] == {"title": "Total Price", "type": "number"}
    assert models["CreatorProfileOut"]["properties"]["rating"]["type"] == "number"
    assert models["ServiceCreator"]["properties"]["rating"]["type"] == "number"
    creator = model("/api/v1/creators/{id}/")
    assert {"skills", "portfolio"} <= set(creator["properties"]) and not {"skills", "portfolio"} & set(
        creator["required"]
    )
    assert model("/api/v1/conversations/", "post", "201") == model("/api/v1/conversations/", "post", "200")
    assert model("/api/auth/verify-email/", "post")["title"] == "VerifyEmailOut"
    page = model("/api/v1/conversations/{id}/messages/")
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/MessageOut"}
    assert model("/api/v1/orders/{id}/", status="404") == models["DetailOut"]
    assert models["OrderOut"]["additionalProperties"] is False


def test_a_401_example_is_the_body_the_route_answers(api: Api) -> None:
    """Where the spec's "no credentials" 401 cannot happen (a login refused, a refresh token refused,
    a token sent to a route that only takes one if sent), the document shows the 401 that can."""
    paths = api.client.get("/api/schema/").json()["paths"]
    user = api.user()
    refresh = {"refresh": "not-a-token"}
    refused = {
        ("/api/auth/token/", "post"): api.client.post(
            "/api/auth/token/", json={"username": user["username"], "password": "wrong-horse-battery"}
        ),
        ("/api/auth/token/refresh/", "post"): api.client.post("/api/auth/token/refresh/", json=refresh),
        ("/api/auth/logout/", "post"): api.client.post("/api/auth/logout/", json=refresh),
        ("/api/portfolio/", "get"): api.client.get("/api/portfolio/", headers={"Authorization": "Bearer not-a-token"}),
        ("/api/v1/users/me/", "get"): api.client.get("/api/v1/users/me/"),
    }
    for (path, method), response in refused.items():
        assert response.status_code == 401, (path, response.text)
        example = paths[path][method]["responses"]["401"]["content"]["application/json"]["example"]
        assert response.json() == example, path


def test_docs_page_loads_nothing_from_the_internet(api: Api) -> None:
    page = api.client.get("/api/docs/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text
    assert "/api/schema/" in page.text


def test_the_asyncapi_document_describes_both_websockets(api: Api) -> None:
    document = api.client.get("/api/asyncapi/").json()
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"/ws/conversations/{conversation_id}/", "/ws/notifications/"}


def test_a_405_allows_every_method_the_path_serves(api: Api) -> None:
    """Each method of a path is a route of its own; `Allow` names them all, not the first one's."""
    for path, allowed in (
        ("/api/portfolio-images/", "GET, HEAD, POST"),
        ("/api/v1/services/1/", "DELETE, GET, HEAD, PATCH"),
        ("/api/v1/users/me/creator-profile/", "PATCH, POST"),
    ):
        answer = api.client.options(path)
        assert answer.status_code == 405, path
        assert answer.headers["allow"] == allowed, path


def test_health_and_readiness(api: Api, backend: str) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    if api.settings.redis_url:
        assert checks["redis"] == "ok"


def test_ids_too_large_for_any_row_are_404_in_paths_and_422_in_bodies(api: Api) -> None:
    huge = "9" * 30
    for path in (f"/api/v1/creators/{huge}/", f"/api/skills/{huge}/", f"/api/v1/services/{huge}/"):
        assert api.client.get(path).status_code == 404, path
    user = api.creator()
    assert api.client.get(f"/api/v1/orders/{huge}/", headers=user["headers"]).status_code == 404
    category = api.client.get("/api/v1/categories/").json()["results"][0]["id"]
    service = {"title": "t", "description": "", "base_price": 1, "delivery_time": 1, "category_id": category}
    bodies: list[tuple[str, Callable[[int], Any], str]] = [
        ("/api/v1/orders/", lambda n: {"service_id": n, "delivery_date": "2999-01-01"}, "service_id"),
        (
            "/api/v1/orders/",
            lambda n: {"service_id": 1, "delivery_date": "2999-01-01", "selected_option_ids": [n]},
            "selected_option_ids.0",
        ),
        ("/api/v1/conversations/", lambda n: {"recipient_id": n}, "recipient_id"),
        ("/api/creator-skills/", lambda n: {"skill": n, "level": 3}, "skill"),
        ("/api/creator-skills/bulk_update/", lambda n: [{"skill_id": n, "level": 3}], "0.skill_id"),
        ("/api/v1/services/", lambda n: service | {"category_id": n}, "category_id"),
        ("/api/v1/services/", lambda n: service | {"options": [{"id": n, "name": "o", "price": 1}]}, "options.0.id"),
    ]
    for path, body, field in bodies:
        for too_large in (MAX_ID + 1, int(huge)):
            response = api.client.post(path, headers=user["headers"], json=body(too_large))
            assert (response.status_code, response.json()) == (422, refused_id(field)), (path, too_large)
    # The largest BIGINT is still an id: it reaches the lookup, which finds nobody (an unknown reference: 422).
    largest = api.client.post("/api/v1/conversations/", headers=user["headers"], json={"recipient_id": MAX_ID})
    assert largest.status_code == 422, largest.text
    assert largest.json()["fields"] == {"recipient_id": ["Пользователь не найден."]}


def test_connections_cut_by_the_database_cost_no_later_request_anything(api: Api, backend: str) -> None:
    """PostgreSQL drops every session (as on a restart) while no request is in flight: every read and
    command after it answers 2xx. A dead pooled connection is found before use, not by a request."""
    if backend != "postgres":
        pytest.skip("a PostgreSQL session to terminate")
    user = api.verified_user()
    # Reads in threads (users/me) and on the event loop (the lists, the services listing's state).
    reads = ["/api/v1/users/me/", "/api/v1/orders/", "/api/v1/services/?search=nothing-like-it"]
    for _ in range(5):  # fill the pools with idle connections to be cut
        for path in reads:
            assert api.client.get(path, headers=user["headers"]).status_code == 200, path
    with psycopg.connect(api.settings.database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    time.sleep(IDLE_BEFORE_CHECK)  # what a restart takes at the least: every pooled connection is idle by then
    for path in reads:
        answers = [api.client.get(path, headers=user["headers"]).status_code for _ in range(20)]
        assert set(answers) == {200}, (path, answers)
    edit = api.client.patch("/api/v1/users/me/", headers=user["headers"], json={"bio": "После перезапуска"})
    assert edit.status_code == 200, edit.text
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).json()["bio"] == "После перезапуска"
