"""`Idempotency-Key`s: who claimed a key first, and the answer to replay (the table is
`ugc/platform/idempotency_keys.py`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from api.errors import ApiError, invalid, message
from ugc.clock import Clock
from ugc.platform import idempotency_keys as table
from ugc.platform.database import Database

WAIT = 10.0
KEPT_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class Stored:
    status: int
    body: str


class IdempotencyKeys:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def claim(self, user_id: int, key: str, fingerprint: str) -> Stored | None:
        """None if this request is the first with the key (it must then `finish` or `release`)."""
        now = self.clock.now()
        if table.claim(self.db, user_id, key, fingerprint, now, now - KEPT_FOR):
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
            if time.monotonic() > deadline:
                raise ApiError(409, {"error": message("idempotency_key_in_flight")})
            time.sleep(0.01)

    def finish(self, user_id: int, key: str, status: int, body: str) -> None:
        table.finish(self.db, user_id, key, status, body)

    def release(self, user_id: int, key: str) -> None:
        table.release(self.db, user_id, key)
