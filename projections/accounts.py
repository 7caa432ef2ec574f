"""Keeps `users` and `creator_profiles` from the accounts log.

One projection for both tables: they come from one log and are joined by queries, so a single
position keeps them consistent with each other. Rows carry their aggregate's UUID because later
events name only that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from ugc.accounts import PROFILE_FIELDS, User
from ugc.creators import CreatorProfile
from ugc.personal import PERSONAL
from ugc.platform.dialect import Cursor
from ugc.platform.store import Accounts


class AccountsProjection(Projection):
    name = "accounts"
    applications: ClassVar[tuple[str, ...]] = (Accounts.name,)
    tables: ClassVar[tuple[str, ...]] = ("users", "creator_profiles")

    def handlers(self) -> Mapping[type, Handler]:
        return {
            User.Registered: self.registered,
            User.EmailVerified: self.email_verified,
            User.VerificationRenewed: self.verification_renewed,
            User.ProfileUpdated: self.profile_updated,
            User.RoleGranted: self.role_granted,
            User.RoleRevoked: self.role_revoked,
            User.Erased: self.erased,
            CreatorProfile.Created: self.creator_profile_created,
            CreatorProfile.Updated: self.creator_profile_updated,
            CreatorProfile.Erased: self.creator_profile_erased,
        }

    def registered(self, cur: Cursor, e: User.Registered) -> None:
        cur.execute(
            "INSERT INTO users (id, uuid, username, email, first_name, last_name, is_verified, roles, "
            "date_joined, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.number,
                str(e.originator_id),
                e.username,
                e.email,
                e.first_name,
                e.last_name,
                False,
                [],
                e.at,
                e.originator_version,
            ),
        )

    def email_verified(self, cur: Cursor, e: User.EmailVerified) -> None:
        _update(cur, "users", e, {"is_verified": True})

    def verification_renewed(self, cur: Cursor, e: User.VerificationRenewed) -> None:
        """Nothing shown changes, but the version does: the ETag of /users/me/ names the version that
        `If-Match` is checked against, so every event of the account moves it."""
        _update(cur, "users", e, {})

    def profile_updated(self, cur: Cursor, e: User.ProfileUpdated) -> None:
        # No changes once the person is erased (their changes read back empty): the version moves all the same.
        _update(cur, "users", e, e.changes)

    def role_granted(self, cur: Cursor, e: User.RoleGranted) -> None:
        row = cur.execute("SELECT roles FROM users WHERE uuid = %s", (str(e.originator_id),)).fetchone()
        roles = sorted({*(row["roles"] if row else []), e.role})
        _update(cur, "users", e, {"roles": roles})

    def role_revoked(self, cur: Cursor, e: User.RoleRevoked) -> None:
        row = cur.execute("SELECT roles FROM users WHERE uuid = %s", (str(e.originator_id),)).fetchone()
        roles = sorted({*(row["roles"] if row else [])} - {e.role})
        _update(cur, "users", e, {"roles": roles})

    def erased(self, cur: Cursor, e: User.Erased) -> None:
        """Blank what the person's destroyed keys sealed, as a replay of the log now reads it."""
        _update(cur, "users", e, {"email": "", **dict.fromkeys(PROFILE_FIELDS, ""), "roles": []})
        profile = PERSONAL[CreatorProfile.Created.TOPIC].erased
        columns = ", ".join(f"{column} = %s" for column in profile)
        cur.execute(
            f"UPDATE creator_profiles SET {columns} WHERE user_id = (SELECT id FROM users WHERE uuid = %s)",
            (*profile.values(), str(e.originator_id)),
        )

    def creator_profile_created(self, cur: Cursor, e: CreatorProfile.Created) -> None:
        cur.execute(
            "INSERT INTO creator_profiles (id, uuid, user_id, version, specialization, experience, portfolio_link, "
            "social_links, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.number,
                str(e.originator_id),
                e.user_number,
                e.originator_version,
                e.specialization,
                e.experience,
                e.portfolio_link,
                e.social_links,
                e.at,
                e.at,
            ),
        )
        cur.execute("UPDATE users SET creator_profile_id = %s WHERE id = %s", (e.number, e.user_number))

    def creator_profile_updated(self, cur: Cursor, e: CreatorProfile.Updated) -> None:
        _update(cur, "creator_profiles", e, {**e.changes, "updated_at": e.at})

    def creator_profile_erased(self, cur: Cursor, e: CreatorProfile.Erased) -> None:
        """Blank the profile (as `User.Erased` did already) and take its new version: its ETag moves."""
        blank = PERSONAL[CreatorProfile.Created.TOPIC].erased
        _update(cur, "creator_profiles", e, {**blank, "updated_at": e.at})


def _update(cur: Cursor, table: str, e: User.Event | CreatorProfile.Event, changes: Mapping[str, object]) -> None:
    """Set `changes` (column names come from the aggregate's own field lists) and the event's version
    (what the row's ETag names) on the event's row."""
    changes = {**changes, "version": e.originator_version}
    columns = ", ".join(f"{column} = %s" for column in changes)
    cur.execute(f"UPDATE {table} SET {columns} WHERE uuid = %s", (*changes.values(), str(e.originator_id)))
