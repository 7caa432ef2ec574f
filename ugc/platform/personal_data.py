"""Personal data sealed per person, so erasing a person destroys a key, not the log (crypto-shredding).

The accounts log is append-only and hash-chained: no byte of it may change. What in it is personal
(`ugc/personal.py` says which fields) is therefore stored sealed with AES-256-GCM under a data key
of the aggregate it belongs to, and each data key is kept, wrapped with the master key
(`UGC_DATA_KEY`, never stored in the database), in a mutable table beside the log, tagged with the
person it belongs to. `ugc users erase` destroys a person's keys (the row stays as a tombstone, so no
new key is ever made for them); their sealed fields then read back as the erased values, in every
replay, while the log's bytes and hash chain stay as they were.

`PersonalDataMapper` does it where events meet the store, so aggregates and projections see plain
values and never a key. A sealed event's state holds `"sealed": {field: text}` in place of its
personal fields; each text is base64 of a random nonce and the AES-GCM ciphertext of the field's
JSON, bound to the aggregate and the field's name (a text moved elsewhere does not open).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import get_topic

from ugc.platform.cache import LRU
from ugc.platform.dialect import relation_exists

if TYPE_CHECKING:  # imported by a process on PostgreSQL only (its event store's)
    from eventsourcing.postgres import PostgresDatastore

SEALED = "sealed"  # the state's key of the sealed fields; no event has a field of this name
_SEALED_KEY = f'"{SEALED}":'.encode()  # how the JSON of a sealed state shows it
NONCE_BYTES = 12
# Keys a process opened are kept this long, so a replay asks the table once per aggregate; an erasure
# reaches every other process's memory within it, and at once where the process hears of it
# (`DataKeys.forget`, ugc/wiring.py `erasures_heard`; the erasing one forgets at once).
OPENED_KEYS_KEPT_FOR = 60.0
OPENED_KEYS = 10_000  # 32 bytes and a UUID each
# Keys are made in the order their aggregates first appear in the log, so a replay that misses one
# finds the next ones beside it in the table: a miss fetches this many, in one query.
KEYS_FETCHED_AT_ONCE = 256
# The row whose key tells which UGC_DATA_KEY this database's keys are wrapped with (`check`).
CANARY = UUID(int=0)
# The row holding the blind index's key once UGC_DATA_KEY was rotated (`data_key_rotation.py`): the
# e-mail claims in the log are digests under the first key's, so that key outlives every rotation.
BLIND_INDEX_ROW = UUID(int=1)


NO_DATA_KEY = "no data key configured (UGC_DATA_KEY): personal data can be neither sealed nor read"


class PersonalDataError(Exception):
    """Personal data that cannot be sealed or opened: no master key, a lost key, a forged text."""


class PersonErased(PersonalDataError):
    """New personal data for someone already erased: it would be kept under no key of theirs."""


class DataKeysMissing(PersonalDataError):
    """The table of data keys is gone while the accounts log holds data sealed under its keys."""


class WrongDataKey(PersonalDataError):
    """UGC_DATA_KEY is not the one this database's keys are wrapped with (`DataKeys.check`): the
    configuration's fault, as a missing key is, unless someone rewrote the keys table."""


class Personal(Protocol):
    """What the mapper needs of a rule of `ugc/personal.py` (the domain says what is personal)."""

    @property
    def erased(self) -> Mapping[str, Any]: ...

    @property
    def person(self) -> str: ...


WRAPPING = b"ugc personal data v1"  # the purpose of the key that wraps the data keys
BLIND_INDEX = b"ugc blind index v1"  # the purpose of the key of `DataKeys.blind_index`


def derived_key(secret: str, purpose: bytes) -> bytes:
    """A 256-bit key derived from `UGC_DATA_KEY` (any string) for one purpose."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())


class DataKeys:
    """The data keys of the accounts log's aggregates, wrapped, in a table of the log's own database.

    The table is mutable (erasure destroys keys), so it is no part of the log: not chained, not
    append-only. Its statements run on the recorder's own connections: the keys cost no pool.
    """

    def __init__(
        self, datastore: PostgresDatastore | SQLiteDatastore, table: str, secret: str | None, *, events_table: str
    ) -> None:
        self.datastore = datastore
        self.table = table
        self.events_table = events_table  # the accounts log's, whose sealed fields these keys open
        self._master = AESGCM(derived_key(secret, WRAPPING)) if secret else None
        self._derived_index = derived_key(secret, BLIND_INDEX) if secret else None
        self._index: bytes | None = None  # the blind index's key, once read (`_index_key`)
        self._postgres = not isinstance(datastore, SQLiteDatastore)
        self._opened = LRU[UUID, tuple[AESGCM | None, float]](OPENED_KEYS)  # None: destroyed
        self._checked = False

    def create_table(self) -> None:
        """Make the table, unless it is missing from a log that holds sealed data (`DataKeysMissing`):
        made anew, empty, it would open none of them, and the next process's canary would hide the loss."""
        self.refuse_if_lost()
        blob = "bytea" if self._postgres else "BLOB"
        with self.datastore.transaction(commit=True) as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (subject {'uuid' if self._postgres else 'TEXT'} PRIMARY KEY, "
                f"person BIGINT, wrapped {blob}, created_at {'timestamptz' if self._postgres else 'TEXT'} NOT NULL, "
                f"erased_at {'timestamptz' if self._postgres else 'TEXT'}"
                # the order keys were made in (SQLite's rowid is it)
                f"{', made bigint GENERATED ALWAYS AS IDENTITY UNIQUE' if self._postgres else ''})"
            )
            index = f"{self.table}_person"
            if isinstance(cur, SQLiteCursor) or not relation_exists(cur, index):  # see `created_index`
                cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {self.table} (person)")

    def refuse_if_lost(self) -> None:
        """Raise `DataKeysMissing` when the table is gone from a database whose accounts log holds
        sealed data (dropped, or lost with a file): only a backup brings those keys back. A log with
        nothing sealed (a new database, one from before sealing) just has no table yet."""
        if self._table_exists() or not self._log_holds_sealed_data():
            return
        raise DataKeysMissing(
            f"the table of data keys ({self.table}) is missing, yet the accounts log holds personal data "
            "sealed under its keys: it was dropped or lost, and every person's sealed fields are unreadable "
            'without it. Restore the database from a backup (README, "Backups and restores"); the table is '
            "not made anew, empty, which would open none of them"
        )

    def _table_exists(self) -> bool:
        found = (
            "SELECT 1 WHERE to_regclass(%s) IS NOT NULL"
            if self._postgres
            else "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        )
        return self._one(found, (self.table,)) is not None

    def _log_holds_sealed_data(self) -> bool:
        """Whether any event of the accounts log holds a sealed field: read once, when the table is missing."""
        found = "position(%s::bytea in state) > 0" if self._postgres else "instr(state, ?) > 0"
        return self._one(f"SELECT 1 FROM {self.events_table} WHERE {found} LIMIT 1", (_SEALED_KEY,)) is not None

    def blind_index(self, value: str) -> str:
        """A keyed digest of `value` (HMAC-SHA256, hex) to find or claim it by without storing it: an
        e-mail address's claim. Whoever holds the log but not UGC_DATA_KEY cannot test a guess."""
        return hmac.new(self._index_key(), value.encode(), hashlib.sha256).hexdigest()

    def check(self) -> None:
        """Refuse a UGC_DATA_KEY other than the one this database's keys are wrapped with.

        The first process to check leaves a key of its own wrapped with its UGC_DATA_KEY (the canary
        row), so even a database holding no personal data yet is pinned to one key: a process started
        with another one (a second development server with a var dir of its own, a CLI run without
        the deployment's key) refuses in one line instead of making keys nobody else can open, and
        answering 500s. Run once per process before any key is made or opened; `serve` and `project`
        run it at start.
        """
        master = self._master_key()
        self.refuse_if_lost()
        if self._row_of(CANARY) is None:
            # A database keyed before canaries: its first key must open before the canary is laid.
            first = self._one(f"SELECT subject, wrapped FROM {self.table} WHERE wrapped IS NOT NULL LIMIT 1", ())
            if first is not None:
                _opens(master, _subject_of(first), _column(first) or b"")
            with self.datastore.transaction(commit=True) as cur:
                cur.execute(
                    f"INSERT {'' if self._postgres else 'OR IGNORE '}INTO {self.table} (subject, wrapped, created_at) "
                    f"VALUES ({self._marks(3)}) {'ON CONFLICT (subject) DO NOTHING' if self._postgres else ''}",
                    (self._subject(CANARY), wrap_key(master, CANARY, os.urandom(32)), self._time(datetime.now(UTC))),
                )
        _opens(master, CANARY, _column(self._row_of(CANARY)) or b"")
        self._checked = True

    def for_sealing(self, subject: UUID, person: int | None) -> bytes:
        """`subject`'s data key, made now if it has none; refused for an erased person's aggregate.

        The key is committed before the events it seals are appended: an append that then fails
        leaves a key that seals nothing, never a sealed text without its key.
        """
        master = self._checked_master()
        key = os.urandom(32)
        fresh = wrap_key(master, subject, key)
        # None when the person was erased: the tombstones of their keys refuse a new one.
        if self._postgres:  # one round trip, committed on its own (the library's connections autocommit)
            row = self._one(
                f"WITH made AS (INSERT INTO {self.table} (subject, person, wrapped, created_at) "
                f"SELECT %s, %s, %s, now() WHERE NOT EXISTS (SELECT FROM {self.table} "
                "WHERE person = %s AND wrapped IS NULL) ON CONFLICT (subject) DO NOTHING RETURNING wrapped) "
                f"SELECT wrapped FROM made UNION ALL SELECT wrapped FROM {self.table} "
                "WHERE subject = %s AND NOT EXISTS (SELECT FROM made)",
                (subject, person, fresh, person, subject),
            )
            if row is None:
                # Another process's key for `subject` was committed while the INSERT waited on it: the
                # statement's snapshot, taken before, cannot see it. A second statement sees it (or
                # sees none: the person's tombstones refused the INSERT).
                row = self._row_of(subject)
        else:
            with self.datastore.transaction(commit=True) as cur:
                cur.execute(
                    f"INSERT OR IGNORE INTO {self.table} (subject, person, wrapped, created_at) SELECT ?, ?, ?, ? "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {self.table} WHERE person = ? AND wrapped IS NULL)",
                    (str(subject), person, fresh, datetime.now(UTC).isoformat(), person),
                )
                cur.execute(f"SELECT wrapped FROM {self.table} WHERE subject = ?", (str(subject),))
                row = cur.fetchone()
        wrapped = _column(row)
        if wrapped is None:
            raise PersonErased(f"aggregate {subject} belongs to someone erased: nothing new is sealed for them")
        return key if wrapped == fresh else unwrap_key(master, subject, wrapped)

    def for_opening(self, subject: UUID) -> AESGCM | None:
        """`subject`'s data key, ready to open with, or None once it was destroyed; a key never made is an error.

        A miss fetches the keys made next too (`KEYS_FETCHED_AT_ONCE`): a replay then asks the table
        once per that many aggregates, not once each (bench/personal_data_cost.py).
        """
        kept = self._opened.get(subject)
        if kept is not None and time.monotonic() - kept[1] < OPENED_KEYS_KEPT_FOR:
            return kept[0]
        master = self._checked_master()
        order = "made" if self._postgres else "rowid"
        rows = self._all(
            f"SELECT subject, wrapped FROM {self.table} WHERE {order} >= "
            f"(SELECT {order} FROM {self.table} WHERE subject = {self._marks(1)}) ORDER BY {order} "
            f"LIMIT {KEYS_FETCHED_AT_ONCE}",
            (self._subject(subject),),
        )
        if not rows:
            raise PersonalDataError(f"no data key for aggregate {subject}: its sealed fields cannot be read")
        now = time.monotonic()
        for row in rows[1:]:  # the keys made after it: one that does not open is no reason to fail this one
            each, wrapped = _subject_of(row), _column(row)
            with contextlib.suppress(PersonalDataError):
                self._opened.put(each, (None if wrapped is None else AESGCM(unwrap_key(master, each, wrapped)), now))
        wrapped = _column(rows[0])  # `subject`'s own, first in the order keys were made
        key = None if wrapped is None else AESGCM(unwrap_key(master, subject, wrapped))
        self._opened.put(subject, (key, now))
        return key

    def destroy(self, person: int, subjects: Collection[UUID], at: datetime) -> int:
        """Destroy every key of `person`, and of `subjects` (aggregates of theirs keyed before keys
        named their person); leave each row as a tombstone. The number of keys destroyed."""
        named = ", ".join([self._marks(1)] * len(subjects)) or "NULL"
        # On SQLite the store's connections zero the destroyed keys' bytes in the file, not leaving
        # them in free pages (`secure_delete`, sqlite_pragmas.EVENT_STORES).
        with self.datastore.transaction(commit=True) as cur:
            cur.execute(
                f"UPDATE {self.table} SET wrapped = NULL, erased_at = {self._marks(1)}, person = "
                f"COALESCE(person, {self._marks(1)}) WHERE (person = {self._marks(1)} OR subject IN ({named})) "
                "AND wrapped IS NOT NULL RETURNING subject",
                (self._time(at), person, person, *map(self._subject, subjects)),
            )
            destroyed = len(cur.fetchall())
            # Subjects not keyed yet get their tombstone too: nothing may be sealed for them later.
            insert = "ON CONFLICT (subject) DO NOTHING" if self._postgres else ""
            for subject in subjects:
                cur.execute(
                    f"INSERT {'' if self._postgres else 'OR IGNORE '}INTO {self.table} "
                    f"(subject, person, wrapped, created_at, erased_at) VALUES ({self._marks(5)}) {insert}",
                    (self._subject(subject), person, None, self._time(at), self._time(at)),
                )
        if not isinstance(self.datastore, SQLiteDatastore):
            # An UPDATE leaves the old row, the key, on its page until vacuumed: vacuum now. (A role
            # that does not own the table gets a warning, and autovacuum does it later.)
            with self.datastore.get_connection() as conn:
                conn.execute(f"VACUUM {self.table}")
        else:
            # The zeroed pages are in the write-ahead log, and the file keeps its copies of them, the
            # keys, until a checkpoint writes them back: checkpoint now (`Database.vacuum`).
            with self.datastore.get_connection(commit=True) as conn:
                conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.forget()
        return destroyed

    def forget(self) -> None:
        """Forget every key opened so far, so the next read asks the table: another process erased
        someone (ugc/platform/erasures.py), and what this one sends (a mail) must not read them."""
        self._opened.clear()

    def erased_persons(self) -> list[int]:
        """The people an erasure destroyed the keys of (their tombstones), by number."""
        rows = self._all(
            f"SELECT DISTINCT person FROM {self.table} WHERE erased_at IS NOT NULL AND person IS NOT NULL "
            "ORDER BY person",
            (),
        )
        return [int(row["person"] if isinstance(row, Mapping) else row[0]) for row in rows]

    def erased(self, person: int) -> bool:
        """Whether an erasure destroyed a key of `person` (a tombstone of theirs exists): one indexed
        read, asked where the system decides who someone is (sign-in, a standing (re)loaded)."""
        found = f"SELECT 1 AS erased FROM {self.table} WHERE person = {self._marks(1)} AND wrapped IS NULL LIMIT 1"
        return self._one(found, (person,)) is not None

    def live(self, person: int) -> int:
        """How many keys of `person` are not destroyed (a restored backup from before their erasure has them)."""
        row = self._one(
            f"SELECT count(*) AS live FROM {self.table} WHERE person = {self._marks(1)} AND wrapped IS NOT NULL",
            (person,),
        )
        return int(row["live"] if isinstance(row, Mapping) else row[0])

    def _index_key(self) -> bytes:
        """The key kept in `BLIND_INDEX_ROW` since a rotation, else the one UGC_DATA_KEY derives.
        Read once: a rotation runs with every process of the deployment stopped."""
        if self._index is None:
            kept = _column(self._row_of(BLIND_INDEX_ROW))
            self._index = (
                self._derived_index if kept is None else unwrap_key(self._checked_master(), BLIND_INDEX_ROW, kept)
            )
        if self._index is None:
            raise PersonalDataError(NO_DATA_KEY)
        return self._index

    def _checked_master(self) -> AESGCM:
        """The master key, once `check` found it to be this database's."""
        if not self._checked:
            self.check()
        return self._master_key()

    def _master_key(self) -> AESGCM:
        if self._master is None:
            raise PersonalDataError(NO_DATA_KEY)
        return self._master

    def _row_of(self, subject: UUID) -> Any:
        return self._one(
            f"SELECT wrapped FROM {self.table} WHERE subject = {self._marks(1)}", (self._subject(subject),)
        )

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first row of one statement, or None."""
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """The rows of one statement: on PostgreSQL one round trip on an autocommit connection (a
        transaction around a lone statement costs two more)."""
        if not isinstance(self.datastore, SQLiteDatastore):
            with self.datastore.get_connection() as conn:
                return conn.execute(sql, params).fetchall()
        with self.datastore.transaction(commit=False) as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def _marks(self, count: int) -> str:
        return ", ".join(["%s" if self._postgres else "?"] * count)

    def _subject(self, subject: UUID) -> UUID | str:
        return subject if self._postgres else str(subject)

    def _time(self, at: datetime) -> datetime | str:
        return at if self._postgres else at.isoformat()


class PersonalDataMapper(Mapper[UUID]):
    """The library's mapper, sealing the personal fields of the events `rules` names (by topic)."""

    def __init__(self, transcoder: Transcoder, rules: Mapping[str, Personal], **kwargs: Any) -> None:
        super().__init__(transcoder, **kwargs)
        self.rules = rules
        self.keys: DataKeys | None = None  # set once the recorder, whose connections it uses, exists

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        rule = self.rules.get(get_topic(type(domain_event)))
        state = vars(domain_event)
        if rule is None:
            return super().to_stored_event(domain_event)
        subject = domain_event.originator_id
        person = state.get(rule.person) if rule.person else None
        key = AESGCM(self._keys().for_sealing(subject, person))
        sealed = {name: _seal(key, subject, name, state[name]) for name in rule.erased}
        kept = {name: value for name, value in state.items() if name not in rule.erased}
        clone = object.__new__(type(domain_event))
        object.__setattr__(clone, "__dict__", {**kept, SEALED: sealed})
        return super().to_stored_event(clone)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        """The event with its sealed fields opened (or erased) before the library upcasts it, so an
        upcaster sees the fields by name, as in an event that was never sealed."""
        subject = stored_event.originator_id
        if stored_event.topic in self.rules and _SEALED_KEY in stored_event.state and isinstance(subject, UUID):
            state = self.transcoder.decode(stored_event.state)
            sealed = state.pop(SEALED, None)
            if sealed is not None:
                state.update(self._opened(stored_event.topic, subject, sealed))
                stored_event = StoredEvent(
                    originator_id=stored_event.originator_id,
                    originator_version=stored_event.originator_version,
                    topic=stored_event.topic,
                    state=self.transcoder.encode(state),
                )
        return super().to_domain_event(stored_event)

    def _opened(self, topic: str, subject: UUID, sealed: Mapping[str, str]) -> dict[str, Any]:
        erased = self.rules[topic].erased
        key = self._keys().for_opening(subject)
        if key is None:
            return {name: erased[name] for name in sealed}
        return {name: _open(key, subject, name, text) for name, text in sealed.items()}

    def _keys(self) -> DataKeys:
        if self.keys is None:
            raise PersonalDataError("this store opened no table of data keys")
        return self.keys


def _seal(key: AESGCM, subject: UUID, name: str, value: Any) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + key.encrypt(nonce, orjson.dumps(value), _bound(subject, name))).decode()


def _open(key: AESGCM, subject: UUID, name: str, text: str) -> Any:
    raw = base64.b64decode(text)
    try:
        return orjson.loads(key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _bound(subject, name)))
    except InvalidTag:
        raise PersonalDataError(f"the sealed {name!r} of aggregate {subject} does not open with its key") from None


def _bound(subject: UUID, name: str) -> bytes:
    return subject.bytes + name.encode()


def wrap_key(master: AESGCM, subject: UUID, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + master.encrypt(nonce, key, subject.bytes)


def unwrap_key(master: AESGCM, subject: UUID, wrapped: bytes) -> bytes:
    try:
        return master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], subject.bytes)
    except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce, written outside the application
        raise PersonalDataError(
            f"the data keys in this database do not open with this UGC_DATA_KEY (aggregate {subject}): "
            "every process of a deployment needs the one they were made with (or the keys table was changed)"
        ) from None


def _opens(master: AESGCM, subject: UUID, wrapped: bytes) -> None:
    """`unwrap_key` for `DataKeys.check`: a key that does not open there is the wrong UGC_DATA_KEY."""
    try:
        unwrap_key(master, subject, wrapped)
    except PersonalDataError as error:
        raise WrongDataKey(str(error)) from None


def _subject_of(row: Any) -> UUID:
    """The `subject` column, the first selected, of a row of either driver."""
    return UUID(str(row["subject"] if isinstance(row, Mapping) else row[0]))


def _column(row: Any) -> bytes | None:
    """The `wrapped` column, the last selected, of a row of either driver (a dict row on PostgreSQL)."""
    if row is None:
        return None
    value = row["wrapped"] if isinstance(row, Mapping) else row[-1]
    return None if value is None else bytes(value)
