"""The leader's sweep of platform rows past their use (ugc/platform/sweeping.py), on both backends:
expired `Idempotency-Key` answers and sign-in attempts older than the throttle's window go, the rest
stay, and a sweep comes at most once an interval."""

from __future__ import annotations

from datetime import timedelta

from api.idempotency_keys import KEPT_FOR
from api.throttle import WINDOW
from ugc.clock import MovableClock
from ugc.platform import auth_failures, idempotency_keys
from ugc.platform.auth_failures import Subject
from ugc.platform.database import Database
from ugc.platform.sweeping import Sweeper


def count(db: Database, table: str, where: str, params: tuple[object, ...]) -> int:
    with db.read() as cur:
        row = cur.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params).fetchone()  # noqa: S608
    return int(row["n"]) if row else 0


def test_a_sweep_forgets_expired_keys_and_old_attempts_and_keeps_the_rest(db: Database) -> None:
    clock = MovableClock()
    now = clock.now()
    for key, age in (("sweep-old", KEPT_FOR + timedelta(minutes=1)), ("sweep-new", timedelta(minutes=1))):
        assert idempotency_keys.claim(db, 77, key, "f", now - age, now - KEPT_FOR, now - KEPT_FOR)
    for subject, age in (("sweep-old", WINDOW + timedelta(minutes=1)), ("sweep-new", timedelta(minutes=1))):
        auth_failures.attempt(
            db, [(Subject("address", subject), 30)], now - age, now - age - WINDOW, now - age - WINDOW
        )
    sweeper = Sweeper(db, clock.now, keys_kept_for=KEPT_FOR, attempts_kept_for=WINDOW)

    assert sweeper.run_once() >= 2
    assert count(db, "idempotency_keys", "user_id = %s", (77,)) == 1
    assert count(db, "idempotency_keys", "key = %s", ("sweep-new",)) == 1
    assert count(db, "auth_failures", "key = %s", ("sweep-old",)) == 0
    assert count(db, "auth_failures", "key = %s", ("sweep-new",)) == 1

    clock.advance(KEPT_FOR)
    assert sweeper.run_once() == 0  # not due yet: the next sweep comes an interval later
    assert count(db, "idempotency_keys", "key = %s", ("sweep-new",)) == 1
