"""The leader's sweep of platform rows past their use (ugc/platform/sweeping.py), on both backends:
expired `Idempotency-Key` answers and sign-in attempts older than the throttle's window go, the rest
stay, and a sweep comes at most once an interval; on SQLite, erasure marks every process has read."""

from __future__ import annotations

import queue
from datetime import timedelta

import pytest

from tests.conftest import Api
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform import auth_failures, erasures, idempotency_keys
from ugc.platform.auth_failures import WINDOW, Subject
from ugc.platform.database import Database
from ugc.platform.erasures import MARKS_KEPT_FOR, ErasureWatch
from ugc.platform.idempotency_keys import KEPT_FOR
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
            db, [(Subject("address", subject), 30)], now - age, now - age - WINDOW, now - age - WINDOW, "test/sweep"
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


def marks(db: Database) -> list[int]:
    with db.read() as cur:
        return [int(row["user_id"]) for row in cur.execute("SELECT user_id FROM erasure_marks ORDER BY seq").fetchall()]


def test_a_sweep_forgets_the_erasure_marks_every_process_has_read_but_the_newest(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL is told of erasures by NOTIFY: it keeps no marks")
    clock = MovableClock()
    now, old = clock.now(), clock.now() - MARKS_KEPT_FOR - timedelta(minutes=1)
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM erasure_marks")
    for user, at in ((901, old), (902, old), (903, now)):
        erasures.announce(db, user, at)
    sweeper = Sweeper(db, clock.now, keys_kept_for=KEPT_FOR, attempts_kept_for=WINDOW, interval=0)

    sweeper.run_once()
    assert marks(db) == [903]

    clock.advance(MARKS_KEPT_FOR + timedelta(minutes=1))
    sweeper.run_once()
    # The newest stays, however old: a new mark is numbered after it, never below what pollers read.
    assert marks(db) == [903]
    erasures.announce(db, 904, clock.now())
    assert marks(db) == [903, 904]


def test_a_poller_whose_unread_marks_were_swept_takes_erasures_as_missed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL is told of erasures by NOTIFY: it keeps no marks")
    monkeypatch.setattr(erasures, "POLL_INTERVAL", 0.5)  # the marks are written and swept before its first read
    clock = MovableClock()
    heard: queue.Queue[int | None] = queue.Queue()  # erased users; None: missed
    watch = ErasureWatch(db, heard.put, lambda: heard.put(None))
    watch.start()
    try:
        old = clock.now() - MARKS_KEPT_FOR - timedelta(minutes=1)
        for user in (911, 912, 913):
            erasures.announce(db, user, old)
        Sweeper(db, clock.now, keys_kept_for=KEPT_FOR, attempts_kept_for=WINDOW).run_once()
        assert marks(db)[-1:] == [913]
        assert [heard.get(timeout=5), heard.get(timeout=5)] == [None, 913]
    finally:
        watch.stop()


def test_a_sweep_forgets_the_sessions_whose_last_refresh_token_expired(
    api: Api, settings: Settings, clock: MovableClock, db: Database
) -> None:
    """Only a later sign-in used to delete them: sessions signed out, or left to expire, with no
    sign-in after them stayed for good. The session refreshed since lives on, until its newest
    token expires."""
    user = api.user()
    for _ in range(3):
        signed_in = api.login(user["username"])
        refreshed = api.client.post("/api/auth/token/refresh/", json={"refresh": signed_in["refresh"]})
        assert refreshed.status_code == 200, refreshed.text
        ended = api.client.post("/api/auth/logout/", json={"refresh": refreshed.json()["refresh"]})
        assert ended.status_code == 204, ended.text
    kept = api.login(user["username"])
    assert count(db, "refresh_families", "user_id = %s", (user["id"],)) == 5
    clock.advance(timedelta(seconds=settings.refresh_token_ttl) - timedelta(hours=1))
    refreshed = api.client.post("/api/auth/token/refresh/", json={"refresh": kept["refresh"]})
    assert refreshed.status_code == 200, refreshed.text
    clock.advance(timedelta(hours=2))

    Sweeper(db, clock.now, keys_kept_for=KEPT_FOR, attempts_kept_for=WINDOW).run_once()

    assert count(db, "refresh_families", "user_id = %s", (user["id"],)) == 1
    again = api.client.post("/api/auth/token/refresh/", json={"refresh": refreshed.json()["refresh"]})
    assert again.status_code == 200, again.text
