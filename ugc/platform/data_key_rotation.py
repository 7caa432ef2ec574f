"""Rotating UGC_DATA_KEY: every data key re-wrapped from the previous master key to the new one.

The data keys themselves stay: the sealed fields in the log (which may not change) open with them as
before. Only their wrapping changes, in the keys table, in one transaction, so a failure leaves every
key wrapped as it was, and a second run finds the canary opening with the new key and does nothing.
Destroyed keys (erasures' tombstones) hold nothing to re-wrap and stay tombstones.

The e-mail claims in the log are digests under the blind index's key, which UGC_DATA_KEY derives:
the first rotation keeps the old one, wrapped like any data key, in `BLIND_INDEX_ROW`, where every
later rotation re-wraps it, so an address registered before still counts as taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.postgres import PostgresDatastore

from ugc.platform.personal_data import (
    BLIND_INDEX,
    BLIND_INDEX_ROW,
    CANARY,
    WRAPPING,
    DataKeys,
    PersonalDataError,
    derived_key,
    unwrap_key,
    wrap_key,
)


class RewrapRefused(Exception):
    """The keys cannot be re-wrapped as asked, for the reason given; nothing was changed (exit status 2)."""


@dataclass(frozen=True)
class Rewrapped:
    keys: int  # data keys re-wrapped, the canary and the blind index's key included; 0: done before


def rewrap(keys: DataKeys, new_secret: str, previous_secrets: Sequence[str]) -> Rewrapped:
    """Re-wrap every key of `keys`' table with `new_secret`, from whichever of `previous_secrets`
    wraps them now; nothing when `new_secret` does already. The caller keeps every other process out."""
    postgres = isinstance(keys.datastore, PostgresDatastore)
    new = _master(new_secret)
    marks = "%s" if postgres else "?"
    with keys.datastore.transaction(commit=True) as cur:
        if postgres:  # a process starting now reads the canary once this commits, not before
            cur.execute(f"LOCK TABLE {keys.table} IN ACCESS EXCLUSIVE MODE")
        cur.execute(f"SELECT subject, wrapped FROM {keys.table} WHERE wrapped IS NOT NULL")
        rows = {_subject(row): _wrapped(row) for row in cur.fetchall()}
        if not rows:
            return Rewrapped(0)  # nothing sealed yet: the first process lays a canary under the new key
        probe = CANARY if CANARY in rows else next(iter(rows))
        if _opens(new, probe, rows[probe]):
            return Rewrapped(0)
        old_secret = next((secret for secret in previous_secrets if _opens(_master(secret), probe, rows[probe])), None)
        if old_secret is None:
            raise RewrapRefused(
                "neither UGC_DATA_KEY nor any key of UGC_DATA_KEY_PREVIOUS opens this database's data keys: "
                "name the key they were wrapped with in UGC_DATA_KEY_PREVIOUS"
            )
        old = _master(old_secret)
        if BLIND_INDEX_ROW not in rows:
            rows[BLIND_INDEX_ROW] = wrap_key(old, BLIND_INDEX_ROW, derived_key(old_secret, BLIND_INDEX))
            now = datetime.now(UTC)
            cur.execute(
                f"INSERT INTO {keys.table} (subject, wrapped, created_at) VALUES ({marks}, {marks}, {marks})",
                (_stored(BLIND_INDEX_ROW, postgres), rows[BLIND_INDEX_ROW], now if postgres else now.isoformat()),
            )
        for subject, wrapped in rows.items():
            try:
                key = unwrap_key(old, subject, wrapped)
            except PersonalDataError:
                raise RewrapRefused(
                    f"the data key of aggregate {subject} does not open with the previous key, as the others "
                    "do: the keys table was changed; nothing was re-wrapped"
                ) from None
            cur.execute(
                f"UPDATE {keys.table} SET wrapped = {marks} WHERE subject = {marks}",
                (wrap_key(new, subject, key), _stored(subject, postgres)),
            )
    if isinstance(keys.datastore, PostgresDatastore):
        # The old wrappings stay on their pages until vacuumed, where the old key would open them.
        with keys.datastore.get_connection() as conn:
            conn.execute(f"VACUUM {keys.table}")
    return Rewrapped(len(rows))


def _master(secret: str) -> AESGCM:
    return AESGCM(derived_key(secret, WRAPPING))


def _opens(master: AESGCM, subject: UUID, wrapped: bytes) -> bool:
    try:
        unwrap_key(master, subject, wrapped)
    except PersonalDataError:
        return False
    return True


def _subject(row: Any) -> UUID:
    return UUID(str(row["subject"] if isinstance(row, Mapping) else row[0]))


def _wrapped(row: Any) -> bytes:
    return bytes(row["wrapped"] if isinstance(row, Mapping) else row[1])


def _stored(subject: UUID, postgres: bool) -> UUID | str:
    return subject if postgres else str(subject)
