"""Who may write a creator's things: the user who owns the creator profile, found on the write side."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from ugc.accounts import User
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.errors import NotAllowed
from ugc.ids import aggregate_id
from ugc.platform.personal_data import PersonErased


def creator_profile_number(accounts: Application[UUID], user_id: int) -> int | None:
    """The public id of the user's creator profile, or None for a user who is not a creator."""
    try:
        profile: CreatorProfile = accounts.repository.get(creator_profile_id(user_id))
    except AggregateNotFoundError:
        return None
    return profile.number


def require_creator(accounts: Application[UUID], user_id: int) -> int:
    """The user's creator profile id; 403 for a user without one (creator-only writes)."""
    number = creator_profile_number(accounts, user_id)
    if number is None:
        raise NotAllowed()
    return number


def require_live_creator(accounts: Application[UUID], user_id: int) -> int:
    """As `require_creator`, for a write that would add something of theirs to a listing: a creator
    erased moments ago, with a token whose standing a server still keeps, adds nothing (PersonErased,
    401), so what their erasure withdrew stays withdrawn."""
    number = require_creator(accounts, user_id)
    user: User = accounts.repository.get(aggregate_id("user", user_id))
    if user.erased:
        raise PersonErased(f"user {user_id} was erased")
    return number


def check_owner(accounts: Application[UUID], user_id: int, creator_profile: int) -> None:
    """403 unless the user owns `creator_profile` (the object is public, so its existence is no secret)."""
    if creator_profile_number(accounts, user_id) != creator_profile:
        raise NotAllowed()
