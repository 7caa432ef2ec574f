"""What in the accounts log is personal data, and whose (README: "Personal data and erasure").

A person's e-mail address, names, phone, bio and creator profile are theirs to have erased; the
store seals them per aggregate (`ugc/platform/personal_data.py`) and erasing the person destroys
the keys. What stays readable is what other people's records need: the username (orders, chats
and the audit record show it to the other party), user numbers, roles, times, password hashes
(which no longer open any account) and whatever the person wrote to others (chat messages, order
briefs, reviews), which is the other party's record as much as theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ugc.accounts import User, VerificationToken
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.ids import aggregate_id


@dataclass(frozen=True)
class Personal:
    """Which fields of one event class are personal, and whose.

    `erased` maps each personal field to the value it reads as once its key is destroyed; `person`
    names the state's field holding the person's user number (a created aggregate's first event; a
    later event's aggregate has its key already, or belongs to the user named in `subjects_of`).
    """

    erased: Mapping[str, Any]
    person: str = ""


_NAMES = {"first_name": "", "last_name": ""}
_CREATOR_PROFILE = {"specialization": "", "experience": "", "portfolio_link": "", "social_links": {}}

# By stored topic: the personal fields of each event class (and what they read as once erased).
PERSONAL: dict[str, Personal] = {
    User.Registered.TOPIC: Personal({"email": "", **_NAMES}, person="number"),
    User.ProfileUpdated.TOPIC: Personal({"changes": {}}),
    VerificationToken.Issued.TOPIC: Personal({"email": ""}, person="user_number"),
    CreatorProfile.Created.TOPIC: Personal(_CREATOR_PROFILE, person="user_number"),
    CreatorProfile.Updated.TOPIC: Personal({"changes": {}}),
}


def subjects_of(user_number: int) -> tuple[UUID, ...]:
    """The aggregates of a person whose later events name no person: keyed by their id instead."""
    return aggregate_id("user", user_number), creator_profile_id(user_number)
