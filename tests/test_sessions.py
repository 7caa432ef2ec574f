"""Refresh tokens rotate, a replayed one ends its whole family, a sign-in's token presented again and
again (the spec's client) works until the family rotates, and signing out ends one session."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import jwt

from tests.conftest import Api, new_client, token_audience
from ugc.clock import MovableClock
from ugc.config import Settings

INVALID = (401, {"detail": "Токен недействителен или просрочен."})


def _refresh(api: Api, token: str) -> Any:
    return api.client.post("/api/auth/token/refresh/", json={"refresh": token})


def _logout(api: Api, token: str) -> Any:
    return api.client.post("/api/auth/logout/", json={"refresh": token})


def _me(api: Api, access: str) -> int:
    return api.client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {access}"}).status_code


def _answer(response: Any) -> tuple[int, Any]:
    return response.status_code, response.json()


def test_a_refresh_answers_a_new_pair_and_the_new_refresh_token_refreshes_again(api: Api) -> None:
    user = api.user()
    first = _refresh(api, user["refresh"])
    assert first.status_code == 200 and set(first.json()) == {"access", "refresh"}
    pair = first.json()
    assert pair["refresh"] != user["refresh"] and _me(api, pair["access"]) == 200
    second = _refresh(api, pair["refresh"])
    assert second.status_code == 200 and _me(api, second.json()["access"]) == 200


def test_replaying_a_rotated_refresh_token_ends_the_whole_family(api: Api) -> None:
    user = api.user()
    first = _refresh(api, user["refresh"]).json()
    second = _refresh(api, first["refresh"]).json()  # a client that takes the new tokens: the family rotates
    # A spent token comes back (a thief's copy, or the owner's after the thief refreshed first).
    assert _answer(_refresh(api, first["refresh"])) == INVALID
    # Every token of the family is dead now, the newest and the sign-in's included, and stays dead.
    assert _answer(_refresh(api, second["refresh"])) == INVALID
    assert _answer(_refresh(api, second["refresh"])) == INVALID
    assert _answer(_refresh(api, user["refresh"])) == INVALID
    # Another sign-in is another family, untouched.
    again = api.login(user["username"])
    assert _refresh(api, again["refresh"]).status_code == 200


def test_a_client_that_keeps_its_sign_in_refresh_token_as_the_spec_answers_refreshes_again_and_again(
    api: Api,
) -> None:
    """The spec's refresh answers `{"access"}`: its client reads no new refresh token and presents
    the sign-in's again. That ended the session at the second refresh (a replay of a spent token)."""
    user = api.user()
    for _ in range(3):
        refreshed = _refresh(api, user["refresh"])
        assert refreshed.status_code == 200, refreshed.text
        assert _me(api, refreshed.json()["access"]) == 200


def test_once_a_successor_is_presented_the_sign_in_token_is_spent(api: Api) -> None:
    """A thief refreshed with a stolen sign-in token and went on with what that gave him: the owner's
    sign-in token then ends the family, the thief's tokens with it."""
    user = api.user()
    thiefs = _refresh(api, user["refresh"]).json()
    thiefs = _refresh(api, thiefs["refresh"]).json()
    assert _answer(_refresh(api, user["refresh"])) == INVALID
    assert _answer(_refresh(api, thiefs["refresh"])) == INVALID


def test_of_two_racing_refreshes_with_one_token_one_wins_and_the_family_ends(api: Api) -> None:
    user = api.user()
    rotating = _refresh(api, _refresh(api, user["refresh"]).json()["refresh"]).json()
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def refresh() -> None:
        barrier.wait()
        answers.append(_refresh(api, rotating["refresh"]))

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 401]
    winner = next(a for a in answers if a.status_code == 200).json()
    assert _answer(_refresh(api, winner["refresh"])) == INVALID


def test_signing_out_revokes_the_refresh_token_and_only_its_session(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        user = api.user()
        other_session = api.login(user["username"])
        response = _logout(api, user["refresh"])
        assert response.status_code == 204 and response.content == b""
        assert _answer(_refresh(api, user["refresh"])) == INVALID
        assert _logout(api, user["refresh"]).status_code == 204  # signing out twice is harmless
        assert _refresh(api, other_session["refresh"]).status_code == 200
        # The access token outlives its session only until it expires.
        assert _me(api, user["access"]) == 200
        clock.advance(timedelta(seconds=settings.access_token_ttl + 1))
        assert _me(api, user["access"]) == 401


def test_signing_out_after_a_rotation_ends_the_family(api: Api) -> None:
    user = api.user()
    rotated = _refresh(api, user["refresh"]).json()
    assert _logout(api, rotated["refresh"]).status_code == 204
    assert _answer(_refresh(api, rotated["refresh"])) == INVALID


def test_signing_out_needs_a_valid_refresh_token(api: Api, settings: Settings) -> None:
    user = api.user()
    for token in ("garbage", user["access"]):
        assert _answer(_logout(api, token)) == INVALID
    assert _logout(api, "").status_code == 422
    assert api.client.post("/api/auth/logout/", json={}).status_code == 422


def test_a_refresh_token_from_before_families_is_refused(api: Api, settings: Settings) -> None:
    user = api.user()
    now = int(time.time())
    claims = {"sub": str(user["id"]), "typ": "refresh", "iat": now, "exp": now + 600, "jti": "old"}
    claims["aud"] = token_audience(settings)
    legacy = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    assert _answer(_refresh(api, legacy)) == INVALID
    assert _answer(_logout(api, legacy)) == INVALID


def test_a_refresh_token_of_a_user_that_does_not_exist_is_refused(api: Api, settings: Settings) -> None:
    now = int(time.time())
    claims = {"sub": "987654321", "typ": "refresh", "iat": now, "exp": now + 600, "jti": "j", "fam": "f"}
    claims["aud"] = token_audience(settings)
    token = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    assert _answer(_refresh(api, token)) == INVALID
    assert _answer(_logout(api, token)) == INVALID
