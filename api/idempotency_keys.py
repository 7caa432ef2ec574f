"""`Idempotency-Key`s: who claimed a key first, and the answer to replay (the table is
`ugc/platform/idempotency_keys.py`).

Before each save of its command, the request records in the key what the save is about to append
(`intend`, commands/intents.py), so the key stays tied to its command even if the process dies,
or its database session is terminated, between the append's commit and the `appended` update. A
claim that recorded an intent is neither let go nor taken over before the event store is asked
whether the intent was appended: if it was, the key is answered 409 `idempotency_key_answer_lost`
(the request was carried out, its answer is lost; read the resource) and the command never runs
again.

Timings, documented in the README:
- in flight for (`UGC_IDEMPOTENCY_IN_FLIGHT`, 30 s): a claim with no answer is settled by a retry
  after this long (a live process appends well within it): taken over if nothing of its command
  is in the event store, answered 409 `idempotency_key_answer_lost` if something is.
- `FINISH_WITHIN`: after a 503 for a read model that lagged, the first request goes on waiting this
  long in the background for its read models, then stores its answer for the retries to replay.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from api.errors import ApiError, invalid, message
from commands.intents import Intent, from_text, to_text
from ugc.clock import Clock
from ugc.platform import idempotency_keys as table
from ugc.platform.database import Database
from ugc.platform.dialect import Row
from ugc.platform.idempotency_keys import KEPT_FOR

WAIT = 10.0  # how long a retry waits for the first request's answer before a 409
FINISH_WITHIN = 20.0


@dataclass(frozen=True)
class Stored:
    status: int
    body: str
    etag: str | None = None

    @classmethod
    def of(cls, row: Row) -> Stored:
        return cls(int(row["status"]), str(row["body"]), row["etag"])


@dataclass
class Pending:
    """The request that holds a key, while its endpoint runs (see `current`)."""

    user_id: int
    key: str
    claimed: bool = False  # an upload's key is claimed once its form is received (`claim_received`)
    # Set when the endpoint's read-your-writes wait timed out after its command appended: the
    # client gets its 503 now, the endpoint goes on in the background and stores the answer.
    answered_503: asyncio.Event = field(default_factory=asyncio.Event)


_current: contextvars.ContextVar[Pending | None] = contextvars.ContextVar("idempotency_pending", default=None)


def current() -> Pending | None:
    """The key the running request holds, if it sent one."""
    return _current.get()


def holding(pending: Pending) -> None:
    """Make `pending` the key of the request running in this context."""
    _current.set(pending)


class IdempotencyKeys:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        in_flight_for: timedelta,
        applied: Callable[[Sequence[Intent]], bool],
    ) -> None:
        self.db = db
        self.clock = clock
        self.in_flight_for = in_flight_for
        self.applied = applied  # whether any of these intents is in the event store (commands.intents.applied)

    def claim(self, user_id: int, key: str, fingerprint: str) -> Stored | None:
        """None if this request is the first with the key (it must then `finish` or `release`)."""
        now = self.clock.now()
        if table.claim(self.db, user_id, key, fingerprint, now, now - KEPT_FOR, now - self.in_flight_for):
            return None
        deadline = time.monotonic() + WAIT
        while True:
            row = table.claimed(self.db, user_id, key)
            if row is None:  # the first request failed and let go of the key: try to be first again
                return self.claim(user_id, key, fingerprint)
            if row["fingerprint"] != fingerprint:
                raise invalid({"Idempotency-Key": [message("idempotency_key_reused")]})
            if row["status"] is not None:
                return Stored.of(row)
            if row["created_at"] < self.clock.now() - self.in_flight_for:  # its process is gone
                intent = str(row["intent"] or "")
                if row["appended"] is None and not (intent and self.applied(from_text(intent))):
                    # Nothing of its command was appended: take it over, if nobody changed it since.
                    if table.claim(
                        self.db,
                        user_id,
                        key,
                        fingerprint,
                        self.clock.now(),
                        self.clock.now() - KEPT_FOR,
                        self.clock.now() - self.in_flight_for,
                        intent,
                    ):
                        return None
                    continue
                return self._lost(user_id, key)
            if time.monotonic() > deadline:
                # As the 503s say it: when to ask again (the first request may still store its answer).
                raise ApiError(409, {"error": message("idempotency_key_in_flight")}, {"Retry-After": "1"})
            time.sleep(0.01)

    def intend(self, user_id: int, key: str, intents: Sequence[Intent]) -> None:
        """Record what the key's command is about to append (before its save; commands/intents.py)."""
        table.intend(self.db, user_id, key, to_text(intents))

    def appended(self, user_id: int, key: str, positions: Mapping[str, int]) -> None:
        """Where the command appended; a dead pooled connection costs one more try, not the request
        its own answer (without this record, its failure settles the key as "answer lost")."""
        self.db.again_if_cut(lambda: table.appended(self.db, user_id, key, positions))

    def finish(self, user_id: int, key: str, answer: Stored) -> None:
        """Keep `answer` for the key: every retry gets it for the day."""
        self.db.again_if_cut(lambda: table.finish(self.db, user_id, key, answer.status, answer.body, answer.etag))

    def release(self, user_id: int, key: str, answer: Stored | None = None) -> Stored | None:
        """Let go of the key after its request failed, or was refused with an `answer` that decided
        nothing, so a retry runs the command, unless the command was appended: then that `answer` is
        kept, or, after a failure, its answer is lost (returned, and what retries replay)."""
        row = table.claimed(self.db, user_id, key)
        if row is None or row["status"] is not None:
            return None
        intent = str(row["intent"] or "")
        if row["appended"] is None and not (intent and self.applied(from_text(intent))):
            table.release(self.db, user_id, key, intent)
            return None
        if answer is not None:
            self.finish(user_id, key, answer)
            return None
        return self._lost(user_id, key)

    def _lost(self, user_id: int, key: str) -> Stored:
        """Answer the key, whose command was applied but whose request ended without an answer, with
        409 `idempotency_key_answer_lost` (or the answer it got meanwhile): never run it again."""
        table.settle_lost(
            self.db,
            user_id,
            key,
            409,
            json.dumps({"error": message("idempotency_key_answer_lost")}, ensure_ascii=False),
        )
        row = table.claimed(self.db, user_id, key)
        assert row is not None and row["status"] is not None  # answered rows are kept for the day
        return Stored.of(row)
