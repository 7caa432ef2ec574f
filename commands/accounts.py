"""Registration, e-mail verification, sign-in checks, profile edits and roles."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.erased import counts_as_erased
from commands.saving import UNCONDITIONAL, Positions, Preconditions, change, save, stored_so_far
from ugc.accounts import User, VerificationToken, verification_key
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.creators import CreatorProfile, creator_profile_id
from ugc.errors import Conflict, InvalidToken, NotFound
from ugc.events import user_actor
from ugc.ids import aggregate_id, claim_id, normalise
from ugc.personal import subjects_of
from ugc.platform import erasures, idempotency_keys, refresh_families
from ugc.platform.database import Database
from ugc.platform.personal_data import DataKeys, PersonalDataError, PersonErased
from ugc.platform.store import EventStores

HASHES_AT_ONCE = 2  # one per core of the machines this runs on
# An address's claim holds a keyed digest of it; claims of kind "email", made before, hold the address.
EMAIL_DIGEST = "email_digest"


@dataclass(frozen=True)
class Register:
    username: str
    email: str
    password: str
    first_name: str
    last_name: str
    verified: bool = False  # an operator vouches for the address: no verification token, so no mail


class SameButThePassword(Conflict):
    """A registration that repeats a stored one in every field but the password: refused as the name
    taken, and a failed guess of that account's password (the route counts it as a failed sign-in)."""


@dataclass(frozen=True)
class Registered:
    user_id: int
    positions: Positions


@dataclass(frozen=True)
class Erasure:
    user_id: int
    username: str  # the account's, whatever case the erasure was asked for in
    newly: bool  # False: the account was erased before (a repeated erasure finishes what one left)
    keys_destroyed: int
    positions: Positions


class AccountCommands:
    def __init__(
        self,
        stores: EventStores,
        db: Database,
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
        verification_ttl: int = 86400,
    ) -> None:
        self.app = stores.accounts
        self.data_keys = stores.data_keys
        self.db = db
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        # Each argon2id hash holds its memory cost (64 MiB by default) while it runs; bounding how
        # many run at once bounds the process's memory, and the CPU they could take from requests.
        self._hashing = threading.BoundedSemaphore(HASHES_AT_ONCE)
        self.verification_ttl = timedelta(seconds=verification_ttl)
        # Verified against when the username is unknown, so a miss costs as much as a wrong password.
        self._decoy_hash = self._hash(secrets.token_urlsafe(16))

    def _hash(self, password: str) -> str:
        with self._hashing:
            return self.hasher.hash(password)

    def register(self, command: Register, actor: str | None = None) -> Registered:
        """Claim the username and e-mail, create the user and issue a verification token, atomically.

        `actor`: who registers the user (an operator); by default the new user registers themself.
        """
        self._refuse_taken(command)
        now = self.clock.now()
        number = self.db.next_number("user")
        actor = actor or user_actor(number)
        user = User(
            number=number,
            username=command.username,
            email=command.email,
            password_hash=self._hash(command.password),
            first_name=command.first_name,
            last_name=command.last_name,
            at=now,
            actor=actor,
        )
        claims = [
            Claim(kind=kind, value=value, owner_number=number, at=now, actor=actor)
            for kind, value in (("username", command.username), (EMAIL_DIGEST, self._email_digest(command.email)))
        ]
        if command.verified:
            user.verify_email(now, actor)
        tokens = [] if command.verified else [self._verification_token(number, command.email, now, actor)]
        try:
            positions = save(self.app, *claims, user, *tokens)
        except IntegrityError:
            self._refuse_taken(command)  # a concurrent registration took a name between our check and our append
            raise
        return Registered(user_id=number, positions=positions)

    def registered_before(self, command: Register) -> Registered | None:
        """The account `command` made already, when it is the same registration sent again, else None.

        A registration takes no `Idempotency-Key`, and its answer may be lost after its append (a 503
        when the read side did not catch up in time, a connection cut): its retry, the same body, was
        told the name was taken, by its own account. The same registration is the same username,
        address and names, of an account not verified since (nobody has used it yet), with a password
        its hash verifies; all that but the password is `SameButThePassword`, which the caller counts
        as a failed sign-in, or this would be a password oracle outside the sign-ins' limits.
        """
        user = self._user_by_claim("username", command.username)
        if user is None or user.is_verified or command.verified:
            return None
        stored = (user.username, user.email, user.first_name, user.last_name)
        if stored != (command.username, command.email, command.first_name, command.last_name):
            return None
        try:
            with self._hashing:
                self.hasher.verify(user.password_hash, command.password)
        except (VerificationError, InvalidHashError):
            raise SameButThePassword("username_taken") from None
        return Registered(user_id=user.number, positions=stored_so_far(self.app))

    def _refuse_taken(self, command: Register) -> None:
        """Conflict when the username or the address has an account: the address by the keyed digest
        its claims have had since personal data is sealed, or by itself (claims made before that)."""
        if self._claimed("username", command.username):
            raise Conflict("username_taken")
        if self._claimed(EMAIL_DIGEST, self._email_digest(command.email)) or self._claimed("email", command.email):
            raise Conflict("email_taken")

    def _email_digest(self, email: str) -> str:
        """The claim's value for an address: a keyed digest (the log then confirms no guessed address)."""
        return self._data_keys().blind_index(normalise(email))

    def _data_keys(self) -> DataKeys:
        if self.data_keys is None:
            raise PersonalDataError("an in-memory store keeps no data keys: no personal data can be kept or erased")
        return self.data_keys

    def refuse_verified(self, user_id: int) -> None:
        """Conflict once the user's address is verified: said before the resends' limit is counted, which
        would otherwise answer a verified user "too many mails" for a mail they no longer need."""
        if self._caller(user_id).is_verified:
            raise Conflict("email_already_verified")

    def resend_verification(self, user_id: int) -> Positions:
        """A new verification token for an unverified user (the mail goes out when it is projected)."""

        def renew(user: User) -> VerificationToken:
            """Issue the new token and void the earlier ones, in one append: a verification with an
            old link that races this one finds the user's version moved and reads the renewal."""
            if user.is_verified:
                raise Conflict("email_already_verified")
            now, actor = self.clock.now(), user_actor(user.number)
            token = self._verification_token(user.number, user.email, now, actor)
            user.renew_verification(token.id, now, actor)
            return token

        return change(self.app, lambda: self._caller(user_id), renew, also=lambda token: (token,)).positions

    def _verification_token(self, user_number: int, email: str, now: datetime, actor: str) -> VerificationToken:
        return VerificationToken(
            key=secrets.token_urlsafe(24),
            user_number=user_number,
            email=email,
            expires_at=now + self.verification_ttl,
            at=now,
            actor=actor,
        )

    def verify_email(self, token: str, secret_keys: Sequence[str]) -> Positions:
        """Use the token and verify its user in one append; a token used meanwhile refuses on the retry.

        `secret_keys`: those a link may be signed with (the current key and any being rotated out)."""
        key = verification_key(token, *secret_keys)
        if key is None:
            raise InvalidToken("invalid_verification_token")

        def load() -> VerificationToken:
            try:
                issued: VerificationToken = self.app.repository.get(VerificationToken.id_for(key))
            except AggregateNotFoundError:
                raise InvalidToken("invalid_verification_token") from None
            return issued

        def decide(issued: VerificationToken) -> User:
            now, holder = self.clock.now(), user_actor(issued.user_number)  # the token proves who follows it
            issued.use(now, holder)
            user: User = self.app.repository.get(aggregate_id("user", issued.user_number))
            if user.erased or not user.verifies_with(issued.id):  # erased, or a link sent again since
                raise InvalidToken("invalid_verification_token")
            user.verify_email(now, holder)
            return user

        return change(self.app, load, decide, also=lambda user: (user,)).positions

    def authenticate(self, username: str, password: str) -> int | None:
        """The user's id if the password is right, else None (in about the same time either way)."""
        user = self._user_by_claim("username", username)
        if user is not None and counts_as_erased(user, self.data_keys):
            user = None
        password_hash = user.password_hash if user else self._decoy_hash
        try:
            with self._hashing:
                self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return user.number if user else None

    def update_profile(
        self, user_id: int, changes: dict[str, Any], *, preconditions: Preconditions = UNCONDITIONAL
    ) -> Positions:
        return change(
            self.app,
            lambda: self._caller(user_id),
            lambda user: user.update_profile(changes, self.clock.now(), user_actor(user_id)),
            preconditions=preconditions,
        ).positions

    def grant_role(self, username: str, role: str, actor: str) -> Positions:
        def load() -> User:
            user = self._user_by_claim("username", username)
            if user is None:
                raise NotFound("user_not_found")
            return user

        return change(self.app, load, lambda user: user.grant(role, self.clock.now(), actor)).positions

    def revoke_role(self, username: str, role: str, actor: str) -> Positions:
        return change(
            self.app, lambda: self._named(username), lambda user: user.revoke(role, self.clock.now(), actor)
        ).positions

    def mark_verified(self, username: str, actor: str) -> Positions:
        """An operator vouches for the address (`ugc users create --verified`): no mail link needed."""
        return change(
            self.app, lambda: self._named(username), lambda user: user.verify_email(self.clock.now(), actor)
        ).positions

    def erase(
        self, username: str, actor: str, journal: Callable[[int, str, datetime], object] | None = None
    ) -> Erasure:
        """Erase the person behind `username`: destroy their data keys, tell every server process, which
        then refuses their access tokens (`erasures.announce`), record it and end their sessions.

        Their e-mail, names, phone, bio and creator profile then read as erased everywhere, replays
        included; what others' records need stays (README: "Personal data and erasure"). The keys go
        first, and their tombstones refuse any new key of the person's: whatever they (or a request
        of theirs already under way) seal from then on is shredded too, so no read row can be
        projected in the clear after the erasure's own event blanked theirs. The keys are destroyed
        again after the event, for a key made in the moment between. A crash part-way leaves what a
        repeated erasure finishes. `journal(user number, username, time)` records the erasure outside
        the database before anything is destroyed, so that it survives the restore of an older backup;
        it is given the account's username, whatever case `username` was typed in.
        """
        data_keys = self._data_keys()
        user = self._user_by_claim("username", username, erased_too=True)
        if user is None:
            raise NotFound("user_not_found")
        newly, now, subjects = not user.erased, self.clock.now(), subjects_of(user.number)
        if journal is not None:
            journal(user.number, user.username, now)
        destroyed = data_keys.destroy(user.number, subjects, now)
        # Told now, not once `User.Erased` is stored: the tombstones already make the person count as
        # erased wherever a standing is read again (`commands/erased.py`), and an erasure killed before
        # its event must not leave servers honouring their tokens for the standing's 30 s.
        erasures.announce(self.db, user.number, now)

        def erase_person(found: User) -> tuple[CreatorProfile, ...]:
            """Erase the user and, in the same append, their creator profile (whose version then moves)."""
            found.erase(now, actor)
            profile = self._creator_profile(user.number)
            if profile is not None:
                profile.erase(now, actor)
            return () if profile is None else (profile,)

        erased = change(
            self.app, lambda: self._user(user.number, erased_too=True), erase_person, also=lambda profile: profile
        )
        again = data_keys.destroy(user.number, subjects, now)
        if again:  # a key made in the moment between: every process that opened it forgets it
            erasures.announce(self.db, user.number, now)
        destroyed += again
        refresh_families.revoke_all_of(self.db, user.number, now)
        idempotency_keys.forget_user(self.db, user.number)
        return Erasure(user.number, user.username, newly, destroyed, erased.positions)

    def erasure_done(self, user_id: int) -> tuple[str, bool] | None:
        """The username of user `user_id`, and whether the database shows them erased (their
        `User.Erased` stored, no data key of theirs left); None when there is no such user."""
        try:
            user = self._user(user_id, erased_too=True)
        except NotFound:
            return None
        return user.username, user.erased and not self._data_keys().live(user.number)

    def erased_users(self) -> list[int]:
        """The ids of the users whose data keys an erasure destroyed (what the database shows erased)."""
        return self._data_keys().erased_persons()

    def user_id(self, username: str) -> int | None:
        """The id of the user with this username, from the log (None: no such user)."""
        user = self._user_by_claim("username", username)
        return None if user is None else user.number

    def _creator_profile(self, user_id: int) -> CreatorProfile | None:
        try:
            profile: CreatorProfile = self.app.repository.get(creator_profile_id(user_id))
        except AggregateNotFoundError:
            return None
        return profile

    def _named(self, username: str) -> User:
        user = self._user_by_claim("username", username)
        if user is None:
            raise NotFound("user_not_found")
        return user

    def _user(self, user_id: int, *, erased_too: bool = False) -> User:
        """The user; an erased one counts as missing unless `erased_too` (erasing it again)."""
        try:
            user: User = self.app.repository.get(aggregate_id("user", user_id))
        except AggregateNotFoundError:
            raise NotFound("user_not_found") from None
        if user.erased and not erased_too:
            raise NotFound("user_not_found")
        return user

    def _caller(self, user_id: int) -> User:
        """The user acting on their own account: one erased moments ago is refused as no longer
        signed in (PersonErased, as the mapper refuses new personal data of theirs)."""
        user = self._user(user_id, erased_too=True)
        if user.erased:
            raise PersonErased(f"user {user_id} was erased")
        return user

    def _user_by_claim(self, kind: str, value: str, *, erased_too: bool = False) -> User | None:
        try:
            claim: Claim = self.app.repository.get(claim_id(kind, value))
        except AggregateNotFoundError:
            return None
        try:
            return self._user(claim.owner_number, erased_too=erased_too)
        except NotFound:
            return None

    def _claimed(self, kind: str, value: str) -> bool:
        try:
            self.app.repository.get(claim_id(kind, value))
        except AggregateNotFoundError:
            return False
        return True
