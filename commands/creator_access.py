"""Who may write a creator's things: the user who owns the creator profile, found on the write side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from commands.saving import Positions, stored_so_far
from ugc.accounts import User
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.errors import NotAllowed, NotFound
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


class ErasedMeanwhile(PersonErased):
    """A write refused once appended, its creator erased meanwhile (`withdrawn_if_erased`): what it
    added is taken back, and the refusal's answer waits for the read side to have applied `positions`
    (where the log ended after the withdrawal), so what the client reads next no longer lists it."""

    def __init__(self, user_id: int, positions: Positions) -> None:
        super().__init__(f"user {user_id} was erased")
        self.positions = positions


def withdrawn_if_erased(
    accounts: Application[UUID], app: Application[UUID], user_id: int, withdraw: Callable[[], object]
) -> None:
    """Once a write that `require_live_creator` let add something of a creator's to `app`'s listing
    is appended: if their erasure was stored since that check, take the thing back (`withdraw`, as
    their own DELETE would; one the erasure withdrew meanwhile is passed over) and refuse the write as
    the check would have (ErasedMeanwhile, a PersonErased: 401).

    The check reads the accounts log and the write appends to the catalog's, with no lock in common;
    the erasure stores `User.Erased`, then withdraws what the listings show once they have applied
    the catalog's log as it stands. A write checked before the one and appended after the other was
    seen by neither, and stayed listed for a person erased. Looking again after the append, one of
    the two sees the other: either the erasure read the log after this append, or this look comes
    after `User.Erased`.
    """
    user: User = accounts.repository.get(aggregate_id("user", user_id))
    if not user.erased:
        return
    try:
        withdraw()
    except NotFound:
        pass
    raise ErasedMeanwhile(user_id, stored_so_far(app))


# A creator profile's things of one kind, as the read model lists them once it reached the positions.
Listed = Callable[[int, Positions], Sequence[int]]


def withdraw_listed(
    accounts: Application[UUID],
    app: Application[UUID],
    creator_user_id: int,
    listed: Listed,
    withdraw: Callable[[int], object],
) -> list[int]:
    """Withdraw each thing of `app` that the read model lists for a creator whose account was erased
    (`withdraw`, as their own DELETE would); the ids withdrawn.

    The read model names them once it has applied the log as it stands: the creator is erased by
    then, so nothing of theirs comes later (`require_live_creator` refuses it). One deleted meanwhile,
    by a DELETE with a token a server still trusted, is passed over.
    """
    profile = creator_profile_number(accounts, creator_user_id)
    if profile is None:
        return []  # not a creator: nothing listed, and nothing to wait for
    withdrawn = []
    for number in listed(profile, stored_so_far(app)):
        try:
            withdraw(number)
        except NotFound:
            continue
        withdrawn.append(number)
    return withdrawn


def check_owner(accounts: Application[UUID], user_id: int, creator_profile: int) -> None:
    """403 unless the user owns `creator_profile` (the object is public, so its existence is no secret)."""
    if creator_profile_number(accounts, user_id) != creator_profile:
        raise NotAllowed()
