"""Refresh tokens rotate, a replayed one ends its whole family, a refresh retried within the reuse
window gets the token its lost answer carried, a sign-in's token presented again and again (the
spec's client) works until the family rotates, and signing out ends one session."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.backends import environment, fresh_database
from tests.conftest import Api, new_client, token_audience
from tests.servers import start_server
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


def test_replaying_a_rotated_refresh_token_past_the_reuse_window_ends_the_whole_family(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotated token presented past the reuse window is a replay: the family ends, and the server
    says so in its log, once (not for each refused token after it), for whoever watches for theft."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        user = api.user()
        first = _refresh(api, user["refresh"]).json()
        second = _refresh(api, first["refresh"]).json()  # a client that takes the new tokens: the family rotates
        # Just inside the window the spent token is a retry of that refresh, answered what it got.
        clock.advance(timedelta(seconds=settings.refresh_reuse_window - 1))
        retried = _refresh(api, first["refresh"])
        assert retried.status_code == 200 and retried.json()["refresh"] == second["refresh"]
        # From the window's end it is a replay (a thief's copy, or the owner's after the thief refreshed first).
        clock.advance(timedelta(seconds=1))
        with caplog.at_level(logging.WARNING, logger="ugc.platform.refresh_families"):
            assert _answer(_refresh(api, first["refresh"])) == INVALID
            # Every token of the family is dead now, the newest and the sign-in's included, and stays dead.
            assert _answer(_refresh(api, second["refresh"])) == INVALID
            assert _answer(_refresh(api, second["refresh"])) == INVALID
            assert _answer(_refresh(api, user["refresh"])) == INVALID
        replays = [r.getMessage() for r in caplog.records if "presented again (a replay)" in r.getMessage()]
        assert len(replays) == 1, replays
        # Another sign-in is another family, untouched.
        again = api.login(user["username"])
        assert _refresh(api, again["refresh"]).status_code == 200


def test_a_refresh_retried_after_its_answer_was_lost_keeps_the_user_signed_in(api: Api) -> None:
    """The client sent its refresh token, the server rotated it and answered, the answer was lost, and
    the client sends the same token again: that ended the family (a replay), signing the user out on
    every device of the session. Within the reuse window the retry gets the very refresh token the
    lost answer carried, and the session goes on."""
    user = api.user()
    rotating = _refresh(api, user["refresh"]).json()
    lost = _refresh(api, rotating["refresh"]).json()  # rotated and answered, never read
    retried = _refresh(api, rotating["refresh"])
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh"] == lost["refresh"] and _me(api, retried.json()["access"]) == 200
    assert _refresh(api, rotating["refresh"]).json()["refresh"] == lost["refresh"]  # and again: still a retry
    following = _refresh(api, retried.json()["refresh"])
    assert following.status_code == 200, following.text
    assert _refresh(api, following.json()["refresh"]).status_code == 200


def test_a_refresh_retried_on_another_server_process_gets_the_same_token(
    api: Api, settings: Settings, clock: MovableClock
) -> None:
    """What a retry is answered is read from the database, not from the process that rotated: a
    runtime of its own (its own pools and caches, as another `ugc serve` has) answers it alike."""
    user = api.user()
    rotating = _refresh(api, user["refresh"]).json()
    lost = _refresh(api, rotating["refresh"]).json()
    with new_client(settings, clock) as elsewhere:
        retried = elsewhere.post("/api/auth/token/refresh/", json={"refresh": rotating["refresh"]})
        assert retried.status_code == 200, retried.text
        assert retried.json()["refresh"] == lost["refresh"]
    assert _refresh(api, lost["refresh"]).status_code == 200


@pytest.mark.e2e
@pytest.mark.timeout(180)  # well inside the window the servers are given: the retry is on time
def test_a_refresh_retried_on_another_ugc_serve_process_gets_the_same_token(backend: str, tmp_path: Path) -> None:
    """The refresh is answered by one `ugc serve`, which then stops; its retry reaches another process
    on the same database (as behind a load balancer), which knows it only from the database. Real
    processes keep real time: the window is set to its bound, beyond the test's own timeout. One
    server at a time, on small pools."""
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path) | {"UGC_REFRESH_REUSE_WINDOW": "300"}
        env |= {name: "1" for name in ("UGC_DB_POOL_MAX", "UGC_DB_ASYNC_POOL_MAX", "UGC_ORDERS_STORE_POOL_MAX")}
        with start_server(env, log_dir=tmp_path) as server, httpx.Client(base_url=server.url, timeout=20) as client:
            person = {"username": "retrier", "email": "retrier@example.com", "password": "correct-horse-battery"}
            assert client.post("/api/auth/register/", json=person).status_code == 201
            signed_in = client.post("/api/auth/token/", json=person)
            assert signed_in.status_code == 200, signed_in.text
            rotating = client.post("/api/auth/token/refresh/", json={"refresh": signed_in.json()["refresh"]}).json()
            lost = client.post("/api/auth/token/refresh/", json={"refresh": rotating["refresh"]}).json()
        with start_server(env, log_dir=tmp_path) as server, httpx.Client(base_url=server.url, timeout=20) as client:
            retried = client.post("/api/auth/token/refresh/", json={"refresh": rotating["refresh"]})
            assert retried.status_code == 200, retried.text
            assert retried.json()["refresh"] == lost["refresh"]
            following = client.post("/api/auth/token/refresh/", json={"refresh": lost["refresh"]})
            assert following.status_code == 200, following.text


def test_a_token_two_rotations_back_ends_the_family_within_the_window(api: Api) -> None:
    """Only the token the last rotation replaced is taken for a retry: an older one is a replay."""
    user = api.user()
    first = _refresh(api, user["refresh"]).json()
    second = _refresh(api, first["refresh"]).json()
    third = _refresh(api, second["refresh"]).json()
    assert _answer(_refresh(api, first["refresh"])) == INVALID
    assert _answer(_refresh(api, third["refresh"])) == INVALID
    assert _answer(_refresh(api, second["refresh"])) == INVALID  # the family is gone: no retry either


def test_a_retry_after_signing_out_is_refused(api: Api) -> None:
    """The window answers retries of a live session only: one signed out stays ended."""
    user = api.user()
    rotating = _refresh(api, user["refresh"]).json()
    answered = _refresh(api, rotating["refresh"]).json()
    assert _logout(api, answered["refresh"]).status_code == 204
    assert _answer(_refresh(api, rotating["refresh"])) == INVALID


def test_a_sign_in_token_sent_twice_at_once_answers_one_refresh_token(api: Api) -> None:
    """A sign-in's token refreshed on two connections at once (or retried after a lost answer) rotated
    twice, so the token of the first answer was spent, and a client that kept it ended its session
    with its next refresh. Within the window the second gets the first's token."""
    user = api.user()
    first = _refresh(api, user["refresh"]).json()
    second = _refresh(api, user["refresh"])
    assert second.status_code == 200 and second.json()["refresh"] == first["refresh"]
    following = _refresh(api, first["refresh"])
    assert following.status_code == 200, following.text
    assert _refresh(api, following.json()["refresh"]).status_code == 200


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


def _racing(api: Api, token: str) -> list[Any]:
    """The answers of two refreshes with `token` sent at once."""
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def refresh() -> None:
        barrier.wait()
        answers.append(_refresh(api, token))

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_refreshes_at_once_with_one_token_both_get_the_same_token_and_the_session_lives(api: Api) -> None:
    """One rotates, the other is a retry of it (two tabs, or a retry sent before the first answer
    came): one of the two used to end the family."""
    user = api.user()
    rotating = _refresh(api, _refresh(api, user["refresh"]).json()["refresh"]).json()
    answers = _racing(api, rotating["refresh"])
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["refresh"] == answers[1].json()["refresh"]
    assert _refresh(api, answers[0].json()["refresh"]).status_code == 200


def test_with_no_reuse_window_a_retry_or_a_race_ends_the_family(settings: Settings) -> None:
    """UGC_REFRESH_REUSE_WINDOW=0: every spent token presented again is a replay, as before the window."""
    with new_client(replace(settings, refresh_reuse_window=0), MovableClock()) as client:
        api = Api(client, settings)
        user = api.user()
        rotating = _refresh(api, user["refresh"]).json()
        answered = _refresh(api, rotating["refresh"]).json()
        assert _answer(_refresh(api, rotating["refresh"])) == INVALID
        assert _answer(_refresh(api, answered["refresh"])) == INVALID

        user = api.user()
        rotating = _refresh(api, _refresh(api, user["refresh"]).json()["refresh"]).json()
        answers = _racing(api, rotating["refresh"])
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
