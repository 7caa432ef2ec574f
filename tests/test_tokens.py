"""Token checks hold on every use, whether or not this process has verified the token before."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from api.tokens import TokenError, TokenService, key_id
from ugc.clock import MovableClock

KEY = "k" * 40


def service(clock: MovableClock, audience: str = "this-deployment") -> TokenService:
    return TokenService(KEY, clock, audience=audience, access_ttl=900, refresh_ttl=3600)


def test_a_verified_token_still_expires_when_time_passes() -> None:
    clock = MovableClock()
    issued = service(clock)
    token = issued.issue(7, "access")
    assert issued.user_id(token, "access") == 7
    clock.advance(timedelta(seconds=899))
    assert issued.user_id(token, "access") == 7
    clock.advance(timedelta(seconds=1))
    with pytest.raises(TokenError, match="expired"):
        issued.user_id(token, "access")


def test_a_verified_token_keeps_its_type() -> None:
    issued = service(MovableClock())
    refresh = issued.issue(7, "refresh")
    assert issued.user_id(refresh, "refresh") == 7
    with pytest.raises(TokenError, match="not an access token"):
        issued.user_id(refresh, "access")


def test_a_token_from_the_future_is_refused_until_its_time_comes() -> None:
    clock = MovableClock()
    ahead = MovableClock(clock.now() + timedelta(minutes=5))
    token = service(ahead).issue(7, "access")
    checker = service(clock)
    with pytest.raises(TokenError, match="future"):
        checker.user_id(token, "access")
    clock.advance(timedelta(minutes=4))
    assert checker.user_id(token, "access") == 7


def test_forged_and_malformed_tokens_are_refused_every_time() -> None:
    checker = service(MovableClock())
    forged = TokenService("f" * 40, MovableClock(), audience="this-deployment", access_ttl=900, refresh_ttl=3600)
    unsigned = jwt.encode({"sub": "7", "typ": "access", "iat": 0, "exp": 2**40, "jti": "x"}, "", algorithm="none")
    for token in (forged.issue(7, "access"), forged.issue(7, "access"), unsigned, "not-a-token"):
        with pytest.raises(TokenError):
            checker.user_id(token, "access")


def test_a_token_of_another_deployment_with_the_same_key_is_refused() -> None:
    """User numbers repeat across databases: the same key must not make one deployment's user 7
    another's user 7 (ugc/platform/deployment.py)."""
    checker = service(MovableClock())
    elsewhere = service(MovableClock(), audience="another-deployment").issue(7, "access")
    now = int(MovableClock().now().timestamp())
    unaddressed = jwt.encode({"sub": "7", "typ": "access", "iat": now, "exp": now + 60, "jti": "x"}, KEY)
    for token in (elsewhere, unaddressed):
        with pytest.raises(TokenError):
            checker.user_id(token, "access")
    assert checker.user_id(service(MovableClock()).issue(7, "access"), "access") == 7


def test_a_token_names_its_key_and_verifies_while_that_key_is_configured() -> None:
    """Rotation: new tokens are signed with the current key; the previous key's still verify, each
    with the one key its `kid` names, until that key leaves the configuration."""
    clock = MovableClock()
    old = service(clock)
    token = old.issue(7, "access")
    assert jwt.get_unverified_header(token)["kid"] == key_id(KEY) != key_id("n" * 40)
    rotated = TokenService(
        "n" * 40, clock, audience="this-deployment", access_ttl=900, refresh_ttl=3600, previous_keys=[KEY]
    )
    assert rotated.user_id(token, "access") == 7
    fresh = rotated.issue(7, "access")
    assert jwt.get_unverified_header(fresh)["kid"] == key_id("n" * 40)
    with pytest.raises(TokenError, match="no longer configured"):
        old.user_id(fresh, "access")  # a process still on the old key alone
    retired = TokenService("n" * 40, clock, audience="this-deployment", access_ttl=900, refresh_ttl=3600)
    assert retired.user_id(fresh, "access") == 7
    with pytest.raises(TokenError, match="no longer configured"):
        retired.user_id(token, "access")


def test_a_token_from_before_key_ids_verifies_with_the_current_key_only() -> None:
    now = int(MovableClock().now().timestamp())
    claims = {"sub": "7", "typ": "access", "iat": now, "exp": now + 60, "jti": "x", "aud": "this-deployment"}
    rotated = TokenService(
        "n" * 40, MovableClock(), audience="this-deployment", access_ttl=900, refresh_ttl=3600, previous_keys=[KEY]
    )
    assert rotated.user_id(jwt.encode(claims, "n" * 40), "access") == 7
    with pytest.raises(TokenError):
        rotated.user_id(jwt.encode(claims, KEY), "access")
