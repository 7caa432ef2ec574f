"""Domain rules of users, claims and verification tokens (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ugc.accounts import User, VerificationToken, verification_key, verification_token
from ugc.claims import Claim
from ugc.errors import InvalidToken
from ugc.events import operator_actor, user_actor
from ugc.ids import aggregate_id, claim_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ANNA, ADMIN = user_actor(7), operator_actor("root")


def a_user() -> User:
    return User(
        number=7,
        username="anna",
        email="anna@example.com",
        password_hash="x",
        first_name="Анна",
        last_name="Смирнова",
        at=NOW,
        actor=ANNA,
    )


def test_a_user_id_is_derived_from_the_public_number() -> None:
    assert a_user().id == aggregate_id("user", 7)


def test_claims_on_names_differing_only_in_case_or_width_collide() -> None:
    first = Claim(kind="username", value="Anna", owner_number=1, at=NOW, actor=ANNA)
    assert first.id == claim_id("username", "ANNA") == claim_id("username", "Ａｎｎａ")
    assert claim_id("username", "anna") != claim_id("email", "anna")


def test_profile_update_records_only_changed_writable_fields() -> None:
    user = a_user()
    user.update_profile({"first_name": "Анна", "bio": "Снимаю видео", "username": "hacker"}, NOW, ANNA)
    events = user.collect_events()
    assert [type(e) for e in events] == [User.Registered, User.ProfileUpdated]
    assert isinstance(events[-1], User.ProfileUpdated)
    assert events[-1].changes == {"bio": "Снимаю видео"}
    assert user.username == "anna"


def test_profile_update_without_changes_records_nothing() -> None:
    user = a_user()
    user.update_profile({"first_name": "Анна"}, NOW, ANNA)
    assert len(user.collect_events()) == 1


def test_verifying_twice_records_one_event() -> None:
    user = a_user()
    user.verify_email(NOW, ANNA)
    user.verify_email(NOW, ANNA)
    assert [type(e) for e in user.collect_events()] == [User.Registered, User.EmailVerified]
    assert user.is_verified


def test_roles_are_granted_once_and_only_known_ones() -> None:
    user = a_user()
    user.grant("auditor", NOW, ADMIN)
    user.grant("auditor", NOW, ADMIN)
    assert user.roles == ["auditor"]
    with pytest.raises(ValueError):
        user.grant("superuser", NOW, ADMIN)


def a_token() -> VerificationToken:
    return VerificationToken(
        key="k" * 32, user_number=7, email="a@example.com", expires_at=NOW + timedelta(hours=1), at=NOW, actor=ANNA
    )


def test_a_token_is_single_use() -> None:
    token = a_token()
    token.use(NOW, ANNA)
    with pytest.raises(InvalidToken) as error:
        token.use(NOW, ANNA)
    assert error.value.code == "verification_token_used"


def test_an_expired_token_is_refused_and_stays_unused() -> None:
    token = a_token()
    with pytest.raises(InvalidToken) as error:
        token.use(NOW + timedelta(hours=1), ANNA)
    assert error.value.code == "verification_token_expired"
    assert not token.used


def test_mailed_tokens_verify_only_with_their_signature() -> None:
    token = verification_token("abc_DEF-123", "secret")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    assert not token.endswith(".")
    assert verification_key(token, "secret") == "abc_DEF-123"
    assert verification_key(token, "other secret") is None
    assert verification_key(token[:-1], "secret") is None
    assert verification_key("no-dot-at-all", "secret") is None
    assert verification_key(".sig", "secret") is None


def test_a_mailed_token_verifies_with_any_of_the_keys_being_rotated() -> None:
    token = verification_token("abc_DEF-123", "old secret")
    assert verification_key(token, "new secret", "old secret") == "abc_DEF-123"
    assert verification_key(token, "new secret") is None
