"""A poison event in the orders log, with the projections in their own process (PostgreSQL).

The event is parked after a few tries; orders commands on other orders keep answering 2xx within
the normal wait; `ugc projections status` shows it; once the cause is fixed `retry` applies it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.backends import environment, fresh_database, postgres_available
from tests.conftest import Api
from tests.orders_world import a_deal, place
from tests.servers import start_server
from ugc.config import Settings

pytestmark = pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to PostgreSQL")

NORMAL_WAIT = 2.0  # Settings.read_your_writes_timeout


def ugc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ugc.cli", *args], env=os.environ | env, capture_output=True, text=True, timeout=60
    )


def parked_of(env: dict[str, str], projection: str) -> int:
    done = ugc(env, "projections", "status", "--json")
    assert done.returncode == 0, done.stderr
    return sum(s["parked"] for s in json.loads(done.stdout) if s["projection"] == projection)


def test_a_poison_event_is_parked_and_the_context_keeps_answering(tmp_path: Path) -> None:
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path) | {"UGC_PROJECTIONS": "external"}
        log = (tmp_path / "projector.log").open("wb")
        projector = subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "project"], env=os.environ | env, stdout=log, stderr=log
        )
        try:
            with (
                start_server(env, log_dir=tmp_path / "logs") as server,
                httpx.Client(base_url=server.url, timeout=30) as client,
            ):
                api = Api(client, Settings.from_env(env))  # type: ignore[arg-type]
                deal = a_deal(api)
                cancelled = place(api, deal)["id"]
                response = client.post(
                    f"/api/v1/orders/{cancelled}/cancel/", headers=deal.buyer["headers"], json={"reason": "Передумал"}
                )
                assert response.status_code == 200, response.text
                victim = place(api, deal)["id"]
                poison = insert_poison(url)

                # Commands on other orders go on answering, each within the normal wait.
                for _ in range(6):
                    started = time.monotonic()
                    response = client.post(
                        "/api/v1/orders/",
                        headers=deal.buyer["headers"],
                        json=place_body(deal),
                    )
                    took = time.monotonic() - started
                    assert response.status_code == 201, (response.text, ugc(env, "projections", "status").stdout)
                    assert took < NORMAL_WAIT + 0.5, took
                    order = response.json()["id"]
                    accepted = client.post(f"/api/v1/orders/{order}/accept/", headers=deal.creator["headers"])
                    assert accepted.status_code == 200, accepted.text

                assert parked_of(env, "orders") == 1
                status = ugc(env, "projections", "status")
                assert status.returncode == 0 and "orders" in status.stdout
                still = ugc(env, "projections", "retry", "orders")
                assert still.returncode == 1 and f"still failing orders {poison}" in still.stdout
                # An event it applied already, or none at all, it cannot give up on: refused, nothing stored.
                for position, refusal in [("1", "applied event 1"), ("0", "positive whole number")]:
                    refused = ugc(env, "projections", "skip", "orders", position)
                    assert refused.returncode == 2 and refusal in refused.stderr, refused.stderr

                fix_poison(url, poison)
                for name in ("orders", "notifications", "creator_stats"):
                    retried = ugc(env, "projections", "retry", name)
                    assert retried.returncode == 0, retried.stdout + retried.stderr
                assert parked_of(env, "orders") == 0
                again = ugc(env, "projections", "retry", "orders")  # said so: it printed nothing
                assert (again.returncode, again.stdout) == (0, "nothing parked for orders\n"), again
                got = client.get(f"/api/v1/orders/{victim}/", headers=deal.buyer["headers"])
                assert got.status_code == 200 and got.json()["status"] == "cancelled", got.text
        finally:
            projector.terminate()
            projector.wait(timeout=15)
            log.close()
        assert projector.returncode == 0, (tmp_path / "projector.log").read_text()


def place_body(deal: Any) -> dict[str, Any]:
    from datetime import date, timedelta

    return {
        "service_id": deal.service["id"],
        "requirements": "Распаковка и обзор",
        "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
        "selected_option_ids": [option["id"] for option in deal.service["options"]],
    }


def insert_poison(url: str) -> int:
    """A `Cancelled` with an empty state appended to the last placed order: no projection can decode it."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT originator_id FROM orders_events WHERE topic = 'ugc.Order.Placed' "
            "ORDER BY notification_id DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        version = conn.execute(
            "SELECT MAX(originator_version) FROM orders_events WHERE originator_id = %s", (row[0],)
        ).fetchone()
        assert version is not None
        inserted = conn.execute(
            "INSERT INTO orders_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, 'ugc.Order.Cancelled', %s) RETURNING notification_id",
            (row[0], version[0] + 1, b"{}"),
        ).fetchone()
        assert inserted is not None
        return int(inserted[0])


def fix_poison(url: str, poison: int) -> None:
    """The cause fixed: the event gets the state of a real cancellation."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE orders_events SET state = (SELECT state FROM orders_events WHERE topic = 'ugc.Order.Cancelled' "
            "AND notification_id <> %s ORDER BY notification_id LIMIT 1) WHERE notification_id = %s",
            (poison, poison),
        )
