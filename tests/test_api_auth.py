"""Registration, verification, tokens: the contract's happy paths and every refusal."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import jwt
import pytest
from starlette.testclient import TestClient

from tests.conftest import Api, mailed_token, new_client, token_audience
from ugc.clock import MovableClock
from ugc.config import Settings


def test_register_answers_the_contract_shape(api: Api) -> None:
    response = api.client.post(
        "/api/auth/register/",
        json={
            "username": "olga_k",
            "email": "olga@example.com",
            "password": "long-enough",
            "first_name": "Ольга",
            "last_name": "К",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "email", "first_name", "last_name"}
    assert isinstance(body["id"], int) and body["id"] > 0
    assert body["username"] == "olga_k" and body["first_name"] == "Ольга"


def test_register_verify_login_me(api: Api) -> None:
    user = api.register()
    token = mailed_token(api.settings, user["email"])
    response = api.client.post("/api/auth/verify-email/", json={"token": token})
    assert response.status_code == 200
    assert response.json() == {"message": "Email успешно подтвержден"}
    tokens = api.login(user["username"])
    me = api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {tokens['access']}"})
    assert me.status_code == 200
    assert me.json()["is_verified"] is True


def test_tokens_pasted_with_the_line_around_them_are_read_without_it(api: Api) -> None:
    """A token holds no whitespace: one copied with its line's end (or a space) is the same token.
    Both were refused (422 and 401), and the wrong verification counted against the address."""
    user = api.register()
    token = mailed_token(api.settings, user["email"])
    assert api.client.post("/api/auth/verify-email/", json={"token": f" {token}\n"}).status_code == 200
    refresh = api.login(user["username"])["refresh"]
    assert api.client.post("/api/auth/token/refresh/", json={"refresh": f"{refresh}\r\n"}).status_code == 200
    blank = api.client.post("/api/auth/token/refresh/", json={"refresh": " \n"})
    assert blank.status_code == 422 and list(blank.json()["fields"]) == ["refresh"]


def test_a_verification_token_works_once(api: Api) -> None:
    user = api.register()
    token = mailed_token(api.settings, user["email"])
    assert api.client.post("/api/auth/verify-email/", json={"token": token}).status_code == 200
    again = api.client.post("/api/auth/verify-email/", json={"token": token})
    assert again.status_code == 422
    assert again.json()["fields"] == {"token": ["Ссылка подтверждения уже использована."]}


@pytest.mark.parametrize("token", ["garbage", "abc.def", "", "x" * 600, "abc.é", "abc.подпись"])
def test_garbage_verification_tokens_are_refused(api: Api, token: str) -> None:
    response = api.client.post("/api/auth/verify-email/", json={"token": token})
    assert response.status_code == 422
    assert "token" in response.json()["fields"]


def test_an_expired_verification_token_is_refused(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        user = api.register()
        token = mailed_token(settings, user["email"])
        clock.advance(timedelta(seconds=settings.verification_token_ttl + 1))
        response = client.post("/api/auth/verify-email/", json={"token": token})
        assert response.status_code == 422
        assert response.json()["fields"] == {"token": ["Срок действия ссылки подтверждения истек."]}


@pytest.mark.parametrize("field", ["username", "email"])
def test_a_taken_username_or_email_is_a_409(api: Api, field: str) -> None:
    first = api.register()
    body = {
        "username": f"other_{first['id']}",
        "email": f"other_{first['id']}@example.com",
        "password": "long-enough",
        field: first[field].upper(),
    }
    response = api.client.post("/api/auth/register/", json=body)
    assert response.status_code == 409
    expected = (
        "Пользователь с таким именем уже существует."
        if field == "username"
        else "Пользователь с таким email уже существует."
    )
    assert response.json() == {"error": expected}


def test_racing_registrations_of_one_name_give_one_201_and_409s(api: Api) -> None:
    name = f"race_{time.monotonic_ns()}"
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def attempt(i: int) -> None:
        barrier.wait()
        body = {"username": name, "email": f"{name}_{i}@example.com", "password": "long-enough"}
        statuses.append(api.client.post("/api/auth/register/", json=body).status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "password": "long-enough"}, "username"),
        ({"username": "bad name!", "email": "a@example.com", "password": "long-enough"}, "username"),
        ({"username": "u" * 151, "email": "a@example.com", "password": "long-enough"}, "username"),
        ({"username": "fine", "email": "not-an-email", "password": "long-enough"}, "email"),
        ({"username": "fine", "email": "a@example.com", "password": "short"}, "password"),
        ({"username": "fine", "email": "a@example.com", "password": "p" * 129}, "password"),
        (
            {"username": "fine", "email": "a@example.com", "password": "long-enough", "first_name": "x" * 151},
            "first_name",
        ),
        ({"username": 5, "email": "a@example.com", "password": "long-enough"}, "username"),
    ],
)
def test_invalid_registrations_are_422_with_the_field(api: Api, body: dict[str, object], field: str) -> None:
    response = api.client.post("/api/auth/register/", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "Ошибка валидации данных."
    assert field in response.json()["fields"]


MIXED_SCRIPTS = "Имя пользователя не может смешивать буквы разных алфавитов (например, латиницу и кириллицу)."


@pytest.mark.parametrize(
    "name",
    [
        "\u0430nn\u0430",  # 'аnnа': Cyrillic а around Latin nn
        "p\u0430ypal",  # one Cyrillic а in a Latin name
        "\u03a9mega",  # Greek Ω, Latin mega
        "\u041f\u0435\u0442\u0440o",  # 'Петрo': a Latin o after Cyrillic
        "admin\u0661",  # an Arabic-Indic digit after Latin letters
    ],
)
def test_a_username_that_mixes_scripts_is_422(api: Api, name: str) -> None:
    body = {"username": f"{name}{uuid.uuid4().int % 10**8}", "email": f"{uuid.uuid4().hex[:8]}@example.com"}
    response = api.client.post("/api/auth/register/", json=body | {"password": "long-enough"})
    assert response.status_code == 422
    assert response.json() == {"error": "Ошибка валидации данных.", "fields": {"username": [MIXED_SCRIPTS]}}


@pytest.mark.parametrize(
    "name",
    [
        "anna",
        "\u0430\u043d\u043d\u0430",
        "\u03c9\u03bc\u03ad\u03b3\u03b1",
        "ma\u00f1ana",
        "jo.doe@x+1-2",
        "\u5c71\u7530\u305f\u308d\u3046",
        "tanaka\u592a\u90ce",
        "\u0438\u0432\u0430\u043d_1981",
    ],
)
def test_a_username_in_one_script_is_accepted(api: Api, name: str) -> None:
    api.register(username=f"{name}_{uuid.uuid4().int % 10**8}", email=f"{uuid.uuid4().hex[:8]}@example.com")


def test_wrong_password_and_unknown_user_read_the_same(api: Api) -> None:
    user = api.register()
    wrong = api.client.post("/api/auth/token/", json={"username": user["username"], "password": "wrong-password"})
    unknown = api.client.post("/api/auth/token/", json={"username": "nobody_here", "password": "wrong-password"})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json() == {"detail": "Неверное имя пользователя или пароль."}


def test_login_is_case_insensitive_in_the_username(api: Api) -> None:
    user = api.register()
    assert api.login(user["username"].upper())["access"]


def test_refresh_gives_a_new_access_token(api: Api) -> None:
    user = api.user()
    response = api.client.post("/api/auth/token/refresh/", json={"refresh": user["refresh"]})
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    me = api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {response.json()['access']}"})
    assert me.status_code == 200


def test_tokens_of_one_type_do_not_pass_as_the_other(api: Api) -> None:
    user = api.user()
    as_access = api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {user['refresh']}"})
    assert as_access.status_code == 401
    assert as_access.json() == {"detail": "Токен недействителен или просрочен."}
    as_refresh = api.client.post("/api/auth/token/refresh/", json={"refresh": user["access"]})
    assert as_refresh.status_code == 401


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _forged(settings: Settings, **changes: object) -> Iterator[str]:
    claims = {"sub": "1", "typ": "access", "iat": int(time.time()), "exp": int(time.time()) + 600, "jti": "x"}
    yield jwt.encode(claims | {"aud": token_audience(settings)} | changes, settings.secret_key, algorithm="HS256")


def test_access_tokens_carry_the_claims(api: Api) -> None:
    user = api.user()
    claims = _claims(user["access"])
    assert {"sub", "typ", "exp", "iat", "jti"} <= set(claims)
    assert claims["typ"] == "access" and _claims(user["refresh"])["typ"] == "refresh"
    assert _claims(user["access"])["jti"] != _claims(api.login(user["username"])["access"])["jti"]


def test_bad_tokens_are_401(api: Api, settings: Settings) -> None:
    user = api.user()
    header, payload, _ = user["access"].split(".")
    aud = token_audience(settings)  # each forgery below is refused for its own flaw, not for a missing audience
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    expired = jwt.encode(
        {"sub": str(user["id"]), "typ": "access", "iat": 1, "exp": 2, "jti": "j", "aud": aud},
        settings.secret_key,
        algorithm="HS256",
    )
    wrongly_signed = jwt.encode(
        {
            "sub": str(user["id"]),
            "typ": "access",
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
            "jti": "j",
            "aud": aud,
        },
        "another-secret-key-of-sufficient-length-0123",
        algorithm="HS256",
    )
    missing_jti = jwt.encode(
        {"sub": str(user["id"]), "typ": "access", "iat": int(time.time()), "exp": int(time.time()) + 600, "aud": aud},
        settings.secret_key,
        algorithm="HS256",
    )
    issued_in_the_future = jwt.encode(
        {
            "sub": str(user["id"]),
            "typ": "access",
            "iat": int(time.time()) + 3600,
            "exp": int(time.time()) + 7200,
            "jti": "j",
            "aud": aud,
        },
        settings.secret_key,
        algorithm="HS256",
    )
    for token in [
        issued_in_the_future,
        f"{none_header}.{payload}.",
        "garbage",
        f"{header}.{payload}.AAAA",
        expired,
        wrongly_signed,
        missing_jti,
    ]:
        response = api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json() == {"detail": "Токен недействителен или просрочен."}
    for header in ("Bearer", "Bearer   "):
        response = api.client.get("/api/v1/users/me/", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json() == {"detail": "Токен недействителен или просрочен."}


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "Basic dXNlcjpwYXNz", "Token abc"],
    ids=["no-header", "empty-header", "blank-header", "basic", "another-scheme"],
)
def test_no_credentials_is_the_spec_401(api: Api, header: str | None) -> None:
    """No bearer token: nothing at all, or credentials of a scheme this API does not take."""
    response = api.client.get("/api/v1/users/me/", headers={} if header is None else {"Authorization": header})
    assert response.status_code == 401
    assert response.json() == {"detail": "Учетные данные не были предоставлены."}
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "form",
    ["Bearer {}", "bearer {}", "BEARER {}", "Bearer   {}", "Bearer\t{}", "Bearer \t {}"],
    ids=["canonical", "lower-case", "upper-case", "spaces", "tab", "spaces-and-tab"],
)
def test_a_bearer_token_is_read_whatever_the_schemes_case_and_the_blanks_after_it(api: Api, form: str) -> None:
    """RFC 9110 §11.1: the scheme in any case; one or more blanks before the token (a tab as well, as
    the spec's original server split the header on any whitespace), never taken for no credentials."""
    user = api.user()
    response = api.client.get("/api/v1/users/me/", headers={"Authorization": form.format(user["access"])})
    assert (response.status_code, response.json()["id"]) == (200, user["id"])


@pytest.mark.parametrize("form", ["Bearer {} extra", "Bearer {},x", "Bearer\t{}\tmore"], ids=["space", "comma", "tab"])
def test_a_bearer_header_with_more_than_a_token_is_401_invalid(api: Api, form: str) -> None:
    """A token68 is one word: what follows a blank after it makes the credentials no token, however
    good the token before it."""
    user = api.user()
    response = api.client.get("/api/v1/users/me/", headers={"Authorization": form.format(user["access"])})
    assert (response.status_code, response.json()) == (401, {"detail": "Токен недействителен или просрочен."})


def test_access_tokens_expire_with_the_clock(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        user = Api(client, settings).user()
        assert client.get("/api/v1/users/me/", headers=user["headers"]).status_code == 200
        clock.advance(timedelta(seconds=settings.access_token_ttl + 1))
        assert client.get("/api/v1/users/me/", headers=user["headers"]).status_code == 401
        refreshed = client.post("/api/auth/token/refresh/", json={"refresh": user["refresh"]})
        assert refreshed.status_code == 200


def test_a_token_for_a_user_that_does_not_exist_is_401(api: Api, settings: Settings) -> None:
    token = next(_forged(settings, sub="999999"))
    assert api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    # A subject past int()'s 4,300 digits (a 500 it was) or past any id: no user, whatever signed it.
    for subject in ["9" * 5000, str(2**63)]:
        far = next(_forged(settings, sub=subject))
        response = api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {far}"})
        assert (response.status_code, response.json()) == (401, {"detail": "Токен недействителен или просрочен."})
    refresh = next(_forged(settings, sub="999999", typ="refresh"))
    assert api.client.post("/api/auth/token/refresh/", json={"refresh": refresh}).status_code == 401


def _fresh(settings: Settings) -> TestClient:
    return new_client(settings, MovableClock())
