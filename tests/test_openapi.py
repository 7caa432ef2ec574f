"""The OpenAPI and AsyncAPI documents: valid, complete, and saying what the routes really do.

Built from the app's routes without a server: the document is a function of the declarations.
(What the routes answer is held to the same declarations by every API test, tests/response_check.py,
and by schemathesis against a live server, tests/test_schemathesis.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from api.app import ROUTES
from api.asyncapi import CLOSE_CODES, asyncapi_document
from api.openapi import DocumentedRoute, DocumentedSocket, openapi_document
from api.realtime import BAD_REQUEST, NOT_FOUND, PROTOCOL_ERROR, SERVICE_RESTART, TRY_AGAIN_LATER, UNAUTHORIZED
from api.schemas.errors import ERROR_BODIES
from api.schemas.examples import EXAMPLES, PAGE_EXAMPLES
from api.schemas.out import Out, Page
from ugc.orders import STATUSES

DOCUMENT = openapi_document(ROUTES, title="UGC Market API", version="1.0.0")
METHODS = {"get", "post", "put", "patch", "delete"}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items() if method in METHODS
    ]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)  # raises on the first problem
    assert DOCUMENT["openapi"] == "3.1.0"


def test_every_route_has_its_operation_and_every_operation_its_route() -> None:
    routes = {
        (re.sub(r"{(\w+)(?::\w+)?}", r"{\1}", route.path), route.method.lower())
        for route in ROUTES
        if isinstance(route, DocumentedRoute)
    }
    documented = {(path, method) for path, method, _ in operations()}
    assert routes == documented
    # Every HTTP route is a documented one: a plain `Route` would answer outside the document.
    undocumented = [
        getattr(route, "path", route) for route in ROUTES if not isinstance(route, DocumentedRoute | DocumentedSocket)
    ]
    assert undocumented == []


def test_operation_ids_are_unique_and_stable() -> None:
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    by_route = {(path, method): op["operationId"] for path, method, op in operations()}
    # Named after the handler: renaming one is a visible change, reordering routes is none.
    assert by_route[("/api/v1/orders/", "post")] == "orders_place_order"
    assert by_route[("/api/v1/orders/{id}/cancel/", "post")] == "orders_cancel"
    assert by_route[("/api/portfolio-images/{id}/", "put")] == "portfolio_update_image_put"
    assert by_route[("/api/portfolio-images/{id}/", "patch")] == "portfolio_update_image_patch"


def test_every_operation_is_tagged_with_a_declared_resource() -> None:
    tags = {tag["name"] for tag in DOCUMENT["tags"]}
    for path, method, op in operations():
        assert len(op["tags"]) == 1 and op["tags"][0] in tags, (path, method)
    assert DOCUMENT["paths"]["/api/v1/orders/{id}/cancel/"]["post"]["tags"] == ["orders"]
    assert DOCUMENT["paths"]["/api/creator-skills/bulk_update/"]["post"]["tags"] == ["creator-skills"]
    assert DOCUMENT["paths"]["/healthz/"]["get"]["tags"] == ["meta"]


def _responses(path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = DOCUMENT["paths"][path][method]["responses"]
    return responses


def test_errors_follow_from_what_the_operation_does() -> None:
    def statuses(path: str, method: str) -> set[int]:
        return {int(status) for status in _responses(path, method)}

    # A lifecycle command: auth, body, visibility, role, state, If-Match, Idempotency-Key, read-model wait.
    cancel = statuses("/api/v1/orders/{id}/cancel/", "post")
    assert cancel == {200, 400, 401, 403, 404, 406, 409, 412, 413, 415, 422, 503}
    # Login: credentials and throttling, no token.
    assert statuses("/api/auth/token/", "post") == {200, 400, 401, 406, 413, 415, 422, 429, 503}
    # An attempt that waited out those in flight is refused as an overload, not as a failure.
    assert "одновременно" in _responses("/api/auth/token/", "post")["503"]["description"]
    assert "одновременно" not in _responses("/api/auth/token/", "post")["429"]["description"]
    # A public list: its query and pages only.
    assert statuses("/api/v1/services/", "get") == {200, 404, 406, 422, 503}
    # Liveness touches nothing that can fail; it answers in JSON alone (406 to an `Accept` without it).
    assert statuses("/healthz/", "get") == {200, 406}
    # A stored file is served whatever `Accept` says: it has no other representation.
    assert 406 not in statuses("/api/v1/files/{id}/download/", "get")
    assert statuses("/api/v1/services/", "post") >= {403}
    # A 415 names the media types taken: in `Accept`, and in the method's own header for POST and PATCH.
    refused = _responses("/api/v1/orders/{id}/", "patch")["415"]
    assert set(refused["headers"]) == {"X-Request-ID", "Accept", "Accept-Encoding", "Accept-Patch"}
    assert "Accept-Post" in _responses("/api/v1/files/upload/", "post")["415"]["headers"]
    assert "`application/json`" in _responses("/api/portfolio/{id}/", "patch")["415"]["description"]
    assert 403 not in statuses("/api/v1/services/{id}/", "get")
    assert 401 not in statuses("/api/v1/services/{id}/", "get")


def test_every_error_has_its_shared_body_and_the_spec_message() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    spec = {
        401: "Учетные данные не были предоставлены.",
        403: "У вас недостаточно прав для выполнения данного действия.",
        404: "Страница не найдена.",
    }
    seen = set()
    for path, method, op in operations():
        for status, answer in op["responses"].items():
            code = int(status)
            if code < 400 or (path, method) == ("/readyz/", "get"):
                continue
            media = answer["content"]["application/json"]
            name = media["schema"]["$ref"].split("/")[-1]
            assert name == ERROR_BODIES[code].__name__, (path, method, status)
            ERROR_BODIES[code].model_validate_json(json.dumps(media["example"]), strict=True)
            if code in spec and (code != 401 or op.get("security") == [{"bearer": []}]):
                assert media["example"] == {"detail": spec[code]}
            assert name in schemas
            seen.add(code)
    assert seen == {400, 401, 403, 404, 406, 409, 412, 413, 415, 416, 422, 429, 503}
    state = _responses("/api/v1/orders/{id}/approve/", "post")["409"]["content"]["application/json"]["example"]
    assert set(state) == {"error", "status"}
    taken = _responses("/api/auth/register/", "post")["409"]["content"]["application/json"]["example"]
    assert taken == {"error": "Пользователь с таким именем уже существует."}
    # Where no request lacks credentials the spec's sentence for that cannot be answered (DESIGN.md).
    login = _responses("/api/auth/token/", "post")["401"]["content"]["application/json"]["example"]
    assert login == {"detail": "Неверное имя пользователя или пароль."}
    optional = _responses("/api/portfolio/", "get")["401"]["content"]["application/json"]["example"]
    assert optional == {"detail": "Токен недействителен или просрочен."}
    in_flight = _responses("/api/v1/notifications/mark-all-read/", "post")["409"]["content"]["application/json"]
    assert "Idempotency-Key" in in_flight["example"]["error"]


def test_query_parameters_are_typed_and_described() -> None:
    for path, method, op in operations():
        for parameter in op["parameters"]:
            if parameter["in"] != "query":
                continue
            assert parameter.get("description"), (path, method, parameter["name"])
            assert parameter["schema"].get("type") in ("integer", "string", "number"), parameter
    orders = {p["name"]: p for p in DOCUMENT["paths"]["/api/v1/orders/"]["get"]["parameters"]}
    assert orders["status"]["schema"]["enum"] == list(STATUSES)
    assert orders["role"]["schema"]["enum"] == ["buyer", "creator"]
    assert orders["page"]["schema"] == {"type": "integer", "minimum": 1, "default": 1}
    assert orders["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    services = {p["name"]: p for p in DOCUMENT["paths"]["/api/v1/services/"]["get"]["parameters"]}
    assert "-created_at" in services["ordering"]["schema"]["enum"]
    assert services["category"]["schema"]["type"] == "integer"


def test_headers_are_documented_where_they_are_taken_and_answered() -> None:
    def parameter_refs(path: str, method: str) -> set[str]:
        return {p["name"] for p in DOCUMENT["paths"][path][method]["parameters"] if p["in"] == "header"}

    assert {"If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"} <= parameter_refs(
        "/api/v1/orders/{id}/cancel/", "post"
    )
    assert {"If-Match", "If-None-Match"} <= parameter_refs("/api/v1/services/{id}/", "patch")
    assert "Idempotency-Key" in parameter_refs("/api/v1/services/{id}/", "patch")
    assert "Idempotency-Key" in parameter_refs("/api/v1/files/upload/", "post")  # claimed once the form is in
    assert "ETag" in _responses("/api/v1/orders/{id}/", "get")["200"]["headers"]
    assert "Retry-After" in _responses("/api/auth/token/", "post")["429"]["headers"]
    assert "Retry-After" in _responses("/api/v1/orders/", "post")["503"]["headers"]
    assert "X-Request-ID" in _responses("/api/v1/categories/", "get")["200"]["headers"]
    assert set(DOCUMENT["components"]["parameters"]) == {
        "If-Match",
        "If-None-Match",
        "If-None-Match-write",
        "If-Modified-Since",
        "If-Range",
        "Idempotency-Key",
        "Range",
        "X-Request-ID",
    }


def test_writes_that_take_if_match_take_if_none_match_and_answer_412_to_either() -> None:
    """On a write `If-None-Match` is a precondition (412), described as such, not the reads' 304."""
    for path, method, op in operations():
        headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
        if method == "get" or "If-Match" not in headers:
            continue
        assert "412" in headers["If-None-Match"]["description"] and "304" not in op["responses"], (path, method)
        assert "`If-None-Match`" in op["responses"]["412"]["description"], (path, method)
    read = {p["name"]: p for p in DOCUMENT["paths"]["/api/v1/services/{id}/"]["get"]["parameters"]}
    assert "304" in read["If-None-Match"]["description"]


def test_an_update_of_a_portfolio_item_or_image_takes_json_as_well_as_a_form() -> None:
    """An update's file is optional, so its fields may come as JSON (api/image_forms.py); a creation's may not."""
    for path, method, model in (
        ("/api/portfolio/{id}/", "put", "PortfolioItemIn"),
        ("/api/portfolio/{id}/", "patch", "PortfolioItemPatchIn"),
        ("/api/portfolio-images/{id}/", "put", "PortfolioImagePatchIn"),
        ("/api/portfolio-images/{id}/", "patch", "PortfolioImagePatchIn"),
    ):
        content = DOCUMENT["paths"][path][method]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}, (path, method)
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}, (path, method)
    for path in ("/api/portfolio/", "/api/portfolio-images/"):
        assert set(DOCUMENT["paths"][path]["post"]["requestBody"]["content"]) == {"multipart/form-data"}, path


def test_reads_that_answer_an_etag_answer_304_to_a_copy_still_current() -> None:
    """A GET with an ETag takes `If-None-Match` and answers 304 without a body; writes do not."""
    for path in ("/api/v1/orders/{id}/", "/api/v1/services/{id}/", "/api/v1/creators/{id}/", "/api/portfolio/{id}/"):
        read = DOCUMENT["paths"][path]["get"]
        assert "If-None-Match" in {p["name"] for p in read["parameters"]}, path
        assert "content" not in read["responses"]["304"] and "ETag" in read["responses"]["304"]["headers"], path
    assert "304" not in _responses("/api/v1/services/{id}/", "patch")
    assert "304" not in _responses("/api/v1/orders/", "post")
    assert "304" not in _responses("/api/v1/categories/", "get")  # no ETag, nothing to compare


def test_a_stored_file_takes_ranges_and_dates_and_answers_their_headers() -> None:
    """A download (api/downloads.py) serves parts of the file (`Range`, under `If-Range`) and revalidates
    by tag or date; its 206 may be one part or several (`multipart/byteranges`), as a client must know."""
    for path, media_type in (("/api/v1/files/{id}/download/", "*/*"), ("/media/portfolio/{key}/", "image/*")):
        read = DOCUMENT["paths"][path]["get"]
        taken = {p["name"] for p in read["parameters"] if p["in"] == "header"}
        assert {"Range", "If-Range", "If-None-Match", "If-Modified-Since"} <= taken, path
        answers = read["responses"]
        assert {"Accept-Ranges", "ETag", "Last-Modified", "Content-Disposition"} <= set(answers["200"]["headers"]), path
        assert answers["206"]["headers"]["Content-Range"] == {"$ref": "#/components/headers/Content-Range-part"}, path
        assert set(answers["206"]["content"]) == {media_type, "multipart/byteranges"}, path
        assert {"ETag", "Last-Modified"} <= set(answers["304"]["headers"]), path
        assert answers["416"]["headers"]["Content-Range"] == {"$ref": "#/components/headers/Content-Range"}, path
    part = re.compile(DOCUMENT["components"]["headers"]["Content-Range-part"]["schema"]["pattern"])
    assert part.match("bytes 0-1023/4096") and not part.match("bytes */4096")


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda model: model.__name__)
def test_every_example_is_an_instance_of_its_model(model: type[BaseModel]) -> None:
    text = json.dumps(EXAMPLES[model])
    if issubclass(model, Out):
        model.model_validate_json(text, strict=True)
    else:
        model.model_validate_json(text)


@pytest.mark.parametrize("item", list(PAGE_EXAMPLES), ids=lambda model: getattr(model, "__name__", "?"))
def test_every_page_example_is_a_page_of_its_model(item: type[BaseModel]) -> None:
    Page[item].model_validate_json(json.dumps(PAGE_EXAMPLES[item]), strict=True)  # type: ignore[valid-type]


def test_the_spec_examples_are_attached() -> None:
    register = DOCUMENT["paths"]["/api/auth/register/"]["post"]
    assert register["requestBody"]["content"]["application/json"]["example"]["email"] == "user@example.com"
    assert register["responses"]["201"]["content"]["application/json"]["example"]["id"] == 1
    skills = _responses("/api/skills/", "get")["200"]["content"]["application/json"]["example"]
    assert [s["name"] for s in skills["results"]] == ["Photoshop", "Illustrator"]
    bulk = DOCUMENT["paths"]["/api/creator-skills/bulk_update/"]["post"]["requestBody"]["content"]
    assert bulk["application/json"]["example"][0] == {"skill_id": 1, "level": 3}


def test_the_websockets_are_described_by_an_asyncapi_document() -> None:
    document = asyncapi_document(ROUTES, title="UGC Market API", version="1.0.0")
    assert document["asyncapi"].startswith("3.")
    channels = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(channels) == {"/ws/conversations/{conversation_id}/", "/ws/notifications/"}
    messages = document["components"]["messages"]
    assert {"MessageOut", "NotificationOut", "SendMessageIn", "ErrorFrame"} <= set(messages)
    assert set(channels["/ws/notifications/"]["bindings"]["ws"]["query"]["properties"]) == {"token", "since"}
    for code in CLOSE_CODES:
        assert f"`{code}`" in document["info"]["description"]
    names = set(document["components"]["schemas"])
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= names
    assert DOCUMENT["x-asyncapi"] == "/api/asyncapi/"


def test_the_asyncapi_close_codes_are_the_readmes_with_every_case() -> None:
    """A client developer reads /api/asyncapi/, not the README: its close codes are the README's table
    ("Realtime"), and each names every case the server closes with it. 1012 said only "Redis went
    away", where every deploy closes every socket with it; 1013 left out the database, 4401 an erased
    account, 4404 a path that names no stream; 1002 (a broken frame) was missing."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = re.findall(r"^\| (\d{4}) \| ", readme, re.MULTILINE)
    assert table and set(CLOSE_CODES) == {int(code) for code in table}
    assert "останавливается" in CLOSE_CODES[SERVICE_RESTART]
    assert "база данных" in CLOSE_CODES[TRY_AGAIN_LATER]
    assert "удален" in CLOSE_CODES[UNAUTHORIZED]
    assert "путь" in CLOSE_CODES[NOT_FOUND]
    assert "дважды" in CLOSE_CODES[BAD_REQUEST]
    for socket in (route for route in ROUTES if isinstance(route, DocumentedSocket)):
        assert PROTOCOL_ERROR in socket.closes, socket.path


def test_patch_bodies_show_fields_optional_but_never_nullable() -> None:
    """A PATCH refuses an explicit null (api/schemas/patch.py): the document must not offer one."""
    patches = {name: schema for name, schema in DOCUMENT["components"]["schemas"].items() if "Patch" in name}
    assert {"ServicePatchIn", "UserPatchIn", "CreatorProfilePatchIn", "UpdateOrderIn"} - set(patches) <= {
        "UpdateOrderIn"
    }
    for name, schema in patches.items():
        assert '"null"' not in json.dumps(schema), name
        assert "required" not in schema, name


def test_money_and_days_carry_the_bounds_the_validators_hold() -> None:
    service = DOCUMENT["components"]["schemas"]["ServiceIn"]["properties"]
    assert service["base_price"]["type"] == "number" and service["base_price"]["exclusiveMinimum"] == 0
    assert service["modifications_price"]["minimum"] == 0
    assert (service["delivery_time"]["minimum"], service["delivery_time"]["maximum"]) == (1, 365)
    assert service["tags"]["maxItems"] == service["options"]["maxItems"] == 20


def test_the_asyncapi_server_is_the_public_url() -> None:
    behind_tls = asyncapi_document(ROUTES, title="T", version="1", public_url="https://market.example:8443/ugc")
    assert behind_tls["servers"]["api"] | {"description": ""} == {
        "host": "market.example:8443",
        "protocol": "wss",
        "pathname": "/ugc",
        "description": "",
    }
