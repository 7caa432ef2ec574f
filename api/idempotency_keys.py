"""`Idempotency-Key`s: who claimed a key first, and the answer to replay (the table is
`ugc/platform/idempotency_keys.py`).

Timings, documented in the README:
- in flight for (`UGC_IDEMPOTENCY_IN_FLIGHT`, 30 s): a claim with no answer and nothing appended is
  taken over by a retry after this long: its process died before it appended (a live one appends
  well within it).
- `FINISH_WITHIN`: after a 503 for a read model that lagged, the first request goes on waiting this
  long in the background for its read models, then stores its answer for the retries to replay.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from api.errors import ApiError, invalid, message
from ugc.clock import Clock
from ugc.platform import idempotency_keys as table
from ugc.platform.database import Database

WAIT = 10.0  # how long a retry waits for the first request's answer before a 409
KEPT_FOR = timedelta(hours=24)
FINISH_WITHIN = 20.0


@dataclass(frozen=True)
class Stored:
    status: int
    body: str


@dataclass
class Pending:
    """The request that holds a key, while its endpoint runs (see `current`)."""

    user_id: int
    key: str
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
    def __init__(self, db: Database, clock: Clock, in_flight_for: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.in_flight_for = in_flight_for

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
                return Stored(int(row["status"]), str(row["body"]))
            if row["appended"] is None and row["created_at"] < self.clock.now() - self.in_flight_for:
                return self.claim(user_id, key, fingerprint)  # abandoned before it appended: take it over
            if time.monotonic() > deadline:
                raise ApiError(409, {"error": message("idempotency_key_in_flight")})
            time.sleep(0.01)

    def appended(self, user_id: int, key: str, positions: Mapping[str, int]) -> None:
        table.appended(self.db, user_id, key, positions)

    def finish(self, user_id: int, key: str, status: int, body: str) -> None:
        table.finish(self.db, user_id, key, status, body)

    def release(self, user_id: int, key: str) -> None:
        table.release(self.db, user_id, key)
