"""Storage of `Idempotency-Key`s: who claimed a key first, and the answer to replay."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from api.errors import ApiError, invalid, message
from ugc.clock import Clock
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
        with self.db.transaction(write=True) as cur:
            cur.execute(
                "DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND created_at < %s",
                (user_id, key, now - KEPT_FOR),
            )
            cur.execute(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (user_id, key) DO NOTHING",
                (user_id, key, fingerprint, now),
            )
            if cur.rowcount == 1:
                return None
        deadline = time.monotonic() + WAIT
        while True:
            with self.db.read() as cur:
                row = cur.execute(
                    "SELECT fingerprint, status, body FROM idempotency_keys WHERE user_id = %s AND key = %s",
                    (user_id, key),
                ).fetchone()
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
        with self.db.transaction(write=True) as cur:
            cur.execute(
                "UPDATE idempotency_keys SET status = %s, body = %s WHERE user_id = %s AND key = %s",
                (status, body, user_id, key),
            )

    def release(self, user_id: int, key: str) -> None:
        with self.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s", (user_id, key))
