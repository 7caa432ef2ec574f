"""/readyz tells the truth: 503 when reads cannot be consistent (and why), 200 "degraded" when
only Redis or parked events are wrong."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from api.app import build_app
from api.routes import meta
from projections import operations
from readmodels.tracking import ProjectionState
from tests.backends import DATA_KEY
from tests.conftest import checked_client
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores
from ugc.wiring import runtime


def test_ready_with_a_running_projector_and_degraded_by_parked_events_or_redis(settings: Settings) -> None:
    app = build_app(lambda: runtime(settings, clock=MovableClock()))
    with checked_client(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["projection_lag"] == "ok" and checks["projection_runner"] == "ok", checks
        assert checks["parked_events"] == "ok"

        db = Database(settings.database_url)
        try:
            with db.transaction(write=True) as cur:
                cur.execute(
                    "INSERT INTO parked_events (projection, application, position, topic, error, attempts, status, "
                    "parked_at) VALUES ('orders', 'orders', 999999, 't', 'e', 5, 'parked', %s)",
                    (datetime.now(UTC),),
                )
            parked = client.get("/readyz")
            assert parked.status_code == 200 and parked.json()["status"] == "degraded", parked.text
            assert parked.json()["checks"]["parked_events"] == "orders: 1"
        finally:
            with db.transaction(write=True) as cur:
                cur.execute("DELETE FROM parked_events WHERE position = 999999")
            db.close()

        def redis_down() -> None:
            raise ConnectionError("redis is away")

        app.state.services.check_redis = redis_down
        degraded = client.get("/readyz")
        assert degraded.status_code == 200, degraded.text
        assert degraded.json()["status"] == "degraded" and degraded.json()["checks"]["redis"] == "unavailable"


def test_lag_above_the_bound_and_no_runner_make_it_unready(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    external = dataclasses.replace(settings, projections="external", ready_max_lag=1, read_your_writes_timeout=0.1)
    app = build_app(lambda: runtime(external, clock=MovableClock()))
    with checked_client(app) as client:
        # Nobody runs the projections: tolerated for a while, then a reason to be unready.
        monkeypatch.setattr(meta, "NO_HOLDER_FOR", 0.2)
        client.get("/readyz")
        time.sleep(0.3)
        alone = client.get("/readyz")
        assert alone.status_code == 503, alone.text
        assert alone.json()["checks"]["projection_runner"].startswith("no lease holder: accounts ("), alone.text
        # An event nobody applies grows older than UGC_READY_MAX_LAG.
        registered = client.post(
            "/api/auth/register/",
            json={"username": "laggard", "email": "laggard@example.com", "password": "long-enough"},
        )
        assert registered.status_code == 503
        time.sleep(1.5)
        lagging = client.get("/readyz")
        assert lagging.status_code == 503 and lagging.json()["status"] == "unavailable", lagging.text
        assert lagging.json()["checks"]["projection_lag"].startswith("lagging: accounts"), lagging.text


def test_lag_is_read_on_the_clock_that_recorded_the_event_not_this_process(settings: Settings) -> None:
    """A process whose clock is 45 s fast (or slow) reports the lag of a fresh event as it is: the age
    comes from the event's recording time and the database's clock, not from two processes' clocks."""
    external = dataclasses.replace(settings, projections="external", read_your_writes_timeout=0.1)
    app = build_app(lambda: runtime(external, clock=MovableClock()))
    with checked_client(app) as client:
        registered = client.post(
            "/api/auth/register/",
            json={"username": "unapplied", "email": "unapplied@example.com", "password": "long-enough"},
        )
        assert registered.status_code == 503  # stored; nobody applies it
    time.sleep(1.2)
    db, stores = Database(settings.database_url), EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        for skew in (timedelta(seconds=45), timedelta(seconds=-45)):
            now = datetime.now(UTC) + skew
            # As the CLI reads it (the pools), and as /readyz does (every statement on its own connection).
            pooled = operations.status(db, stores, now=now)

            def probe(cur: Cursor, now: datetime = now) -> list[ProjectionState]:
                return operations.status(db, stores, now=now, on=cur)

            probed = db.probing(probe)
            for states in (pooled, probed):
                [accounts] = {s.lag_seconds for s in states if s.application == "accounts" and s.read_model} - {0.0}
                assert 1.2 <= accounts < 10, (skew, accounts)
            assert [(s.projection, s.application, s.lag_events) for s in probed] == [
                (s.projection, s.application, s.lag_events) for s in pooled
            ]
    finally:
        stores.close()
        db.close()
