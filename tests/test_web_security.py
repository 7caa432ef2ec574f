"""What a browser, a cache or a proxy between them and a real `ugc serve` may do with its answers.

The headers that decide it (caching, transport, types) and the addresses the answers point to,
checked on the wire of a real uvicorn process, since a proxy or a browser sees only that.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import environment
from tests.conftest import Api, token_audience
from tests.servers import Server, served_fresh, start_server
from ugc.config import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("web-security-var")) as served:
        yield served


@pytest.fixture(scope="module")
def client(server: tuple[Server, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0].url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def api(client: httpx.Client, server: tuple[Server, Settings]) -> Api:
    return Api(client, server[1])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def user(api: Api) -> dict[str, Any]:
    return api.verified_user()


def test_answers_about_someone_are_kept_by_no_cache(client: httpx.Client, user: dict[str, Any]) -> None:
    """A token pair, a profile, a private file: `no-store`, so that neither the browser's disk nor a
    shared cache keeps them (a download used to carry only `Last-Modified`, which lets a cache keep it)."""
    signed_in = client.post("/api/auth/token/", json={"username": user["username"], "password": user["password"]})
    refreshed = client.post("/api/auth/token/refresh/", json={"refresh": signed_in.json()["refresh"]})
    uploaded = client.post(
        "/api/v1/files/upload/", headers=user["headers"], files={"file": ("brief.txt", b"secret brief", "text/plain")}
    )
    assert uploaded.status_code == 201, uploaded.text
    answers = {
        "sign-in": signed_in,
        "refresh": refreshed,
        "profile": client.get("/api/v1/users/me/", headers=user["headers"]),
        "download": client.get(f"/api/v1/files/{uploaded.json()['id']}/download/", headers=user["headers"]),
        "refusal": client.get("/api/v1/users/me/"),
    }
    assert {name: answer.headers.get("cache-control") for name, answer in answers.items()} == dict.fromkeys(
        answers, "no-store"
    )
    # Reached over plain http, nothing pins TLS.
    assert "strict-transport-security" not in answers["profile"].headers
    # What may be kept still says so itself.
    asset = client.get("/api/docs/assets/audit.js")
    assert asset.status_code == 200 and asset.headers["cache-control"] == "public, max-age=86400"


def test_no_address_in_an_answer_comes_from_the_request_host(server: tuple[Server, Settings]) -> None:
    """The AsyncAPI document named the request's `Host` as the sockets' server: a client that wrote
    another host there got a document (under our URL, for any cache to keep) sending tokens to it."""
    running, settings = server
    with httpx.Client(base_url=running.url, headers={"Host": "attacker.example"}, timeout=30) as foreign:
        document = foreign.get("/api/asyncapi/")
        listing = foreign.get("/api/v1/categories/", params={"page_size": 1})
    assert document.status_code == 200 and listing.status_code == 200
    assert document.json()["servers"]["api"]["host"] == settings.public_url.removeprefix("http://")
    assert document.json()["servers"]["api"]["protocol"] == "ws"
    assert listing.json()["next"].startswith(f"{settings.public_url}/api/v1/categories/")
    assert "attacker.example" not in document.text and "attacker.example" not in listing.text


def test_a_deployment_behind_https_pins_browsers_to_it(tmp_path: Path) -> None:
    """With UGC_PUBLIC_URL https, every answer carries `Strict-Transport-Security`, so a browser that
    reached the API once never sends a token or a password to it in clear again (none did)."""
    env = environment("sqlite", f"sqlite:///{tmp_path / 'ugc.sqlite3'}", tmp_path)
    with (
        start_server(env | {"UGC_PUBLIC_URL": "https://market.example"}, log_dir=tmp_path) as running,
        httpx.Client(base_url=running.url, headers={"X-Forwarded-Proto": "https"}, timeout=30) as client,
    ):
        answers = [client.get("/api/v1/categories/"), client.get("/api/v1/users/me/"), client.get("/api/docs/")]
        assert [answer.headers.get("strict-transport-security") for answer in answers] == ["max-age=31536000"] * 3


def test_a_token_of_another_deployment_with_the_same_key_is_refused(
    api: Api, server: tuple[Server, Settings], tmp_path: Path
) -> None:
    """Two deployments given one UGC_SECRET_KEY (a staging copy of production's environment): a token
    deployment A issued to its user N was taken by B for B's user N, another person (it was: 200
    with that person's profile, e-mail included)."""
    running, settings = server
    env = environment("sqlite", f"sqlite:///{tmp_path / 'ugc.sqlite3'}", tmp_path)  # the same secret key
    with (
        start_server(env, log_dir=tmp_path) as elsewhere,
        httpx.Client(base_url=elsewhere.url, timeout=30) as other_client,
    ):
        outsider = Api(other_client, Settings.from_env(env | {"UGC_PUBLIC_URL": elsewhere.url})).user()  # type: ignore[arg-type]
        assert other_client.get("/api/v1/users/me/", headers=outsider["headers"]).status_code == 200
    assert outsider["id"] <= api.user()["id"]  # B has a user of that number: the token's subject exists there
    me = api.client.get("/api/v1/users/me/", headers=outsider["headers"])
    assert me.status_code == 401 and me.json() == {"detail": "Токен недействителен или просрочен."}
    assert api.client.post("/api/auth/token/refresh/", json={"refresh": outsider["refresh"]}).status_code == 401
    # B's own tokens are addressed to B.
    assert token_audience(settings) != token_audience(Settings.from_env(env))
