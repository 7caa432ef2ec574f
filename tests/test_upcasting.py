"""A log written with the first shapes of every event (tests/fixtures/events/log-v1.json) still works.

It is loaded as stored into a fresh database; then the current code decodes it (through the
upcasters), the projections replay it, and the API serves what it holds: the orders, the notifications
with the texts and recipients they had, and each order's history with its actors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from starlette.testclient import TestClient

from readmodels.waiting import wait_for
from tests import third_party_check
from tests.backends import DATA_KEY
from tests.conftest import Api, new_client
from tests.golden_events import FIXTURES
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.events import INTERNAL_FIELDS, SCHEDULER, UNRECORDED, user_actor
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate

LOG = json.loads((FIXTURES / "log-v1.json").read_text())


def states(topic: str) -> list[dict[str, Any]]:
    return [stored["state"] for events in LOG.values() for stored in events if stored["topic"] == topic]


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    db = Database(settings.database_url)
    migrate(db)
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        for name, events in LOG.items():
            stores[name].recorder.insert_events(
                [
                    StoredEvent(
                        originator_id=UUID(e["originator_id"]),
                        originator_version=e["originator_version"],
                        topic=e["topic"],
                        state=json.dumps(e["state"]).encode(),
                    )
                    for e in events
                ]
            )
    finally:
        stores.close()
        db.close()
    with new_client(settings, MovableClock()) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        wait_for(services.db, services.progress, services.orders.stores.heads(), 10.0)
        yield client


def login(client: TestClient, settings: Settings, user: int) -> dict[str, str]:
    username = next(s["username"] for s in states("ugc.User.Registered") if s["number"] == user)
    tokens = Api(client, settings).login(username)
    return {"Authorization": f"Bearer {tokens['access']}"}


def test_every_old_event_decodes_with_an_actor_and_no_request(client: TestClient) -> None:
    stores = client.app.state.services.orders.stores  # type: ignore[attr-defined]
    for name, events in LOG.items():
        decoded = [stores[name].mapper.to_domain_event(n) for n in stores[name].recorder.select_notifications(1, 1000)]
        assert len(decoded) == len(events)
        assert all(e.request_id is None and isinstance(e.actor, str) for e in decoded)
    orders = [stores.orders.mapper.to_domain_event(n) for n in stores.orders.recorder.select_notifications(1, 1000)]
    old = [e["state"] for e in LOG["orders"]]
    # Version 1 named the actor by number (0: the scheduler), and the buyer placed.
    assert [e.actor for e in orders] == [
        user_actor(s["buyer"]) if "buyer" in s else SCHEDULER if s["actor"] == 0 else user_actor(s["actor"])
        for s in old
    ]
    accounts = [
        stores.accounts.mapper.to_domain_event(n) for n in stores.accounts.recorder.select_notifications(1, 100)
    ]
    assert {e.actor for e in accounts} == {UNRECORDED}  # nothing in those events told who


def test_the_projections_serve_the_old_orders_and_their_histories(client: TestClient, settings: Settings) -> None:
    placed = states("ugc.Order.Placed")
    buyer = placed[0]["buyer"]
    headers = login(client, settings, buyer)
    listed = client.get("/api/v1/orders/", headers=headers).json()
    assert sorted(o["id"] for o in listed["results"]) == sorted(s["number"] for s in placed if s["buyer"] == buyer)
    history = client.get(f"/api/v1/orders/{placed[0]['number']}/history/", headers=headers)
    assert history.status_code == 200, history.text
    old = [e["state"] for e in LOG["orders"] if e["originator_id"] == LOG["orders"][0]["originator_id"]]
    entries = history.json()["results"]
    assert history.json()["count"] == len(entries) == len(old)
    # Rendered in the new shape: no internals of version 1, actors from what the old events told.
    assert not any(INTERNAL_FIELDS & set(e["data"]) for e in entries)
    assert entries[0]["actor"] == {"kind": "user", "id": buyer, "username": placed[0]["buyer_username"]}
    assert all(e["request_id"] is None for e in entries)
    assert [e["version"] for e in entries] == list(range(1, len(old) + 1))


def test_old_events_notify_whom_they_did_with_the_words_they_did(client: TestClient, settings: Settings) -> None:
    """And an order the scheduler completed tells its buyer too, with the creator's words (since
    version 2 of the notifications projection, which rebuilds what was stored before)."""
    told = Counter(
        (s["notify"], s["notice"]) for events in LOG.values() for e in events if "notice" in (s := e["state"])
    )
    buyers = {e["originator_id"]: e["state"]["buyer"] for e in LOG["orders"] if e["topic"] == "ugc.Order.Placed"}
    told.update(
        (buyers[e["originator_id"]], e["state"]["notice"])
        for e in LOG["orders"]
        if e["topic"] == "ugc.Order.AutoCompleted"
    )
    shown: Counter[tuple[int, str]] = Counter()
    for user in {user for user, _ in told}:
        inbox = client.get("/api/v1/notifications/", headers=login(client, settings, user), params={"page_size": 100})
        shown.update((user, n["message"]) for n in inbox.json()["results"])
    assert shown == told


def test_every_old_orders_history_verifies_as_the_third_party_checks_it(client: TestClient, settings: Settings) -> None:
    """A field an upcaster adds (`erased_party`, null for a cancellation stored before version 3) is
    no value shown that the log does not hold: an intact old record verifies, by the third party's
    check as by the auditor's page (tests/test_browser.py), which hold `data` to the payload alike."""
    placed = states("ugc.Order.Placed")
    cancelled = 0
    for order in placed:
        headers = login(client, settings, order["buyer"])
        history = client.get(f"/api/v1/orders/{order['number']}/history/", headers=headers, params={"page_size": 100})
        assert history.status_code == 200, history.text
        entries = history.json()["results"]
        cancelled += sum(entry["type"] == "OrderCancelled" for entry in entries)
        assert third_party_check.check(entries, "orders") is None, order["number"]
    assert cancelled  # the old log holds a cancellation of version 1, whose `data` shows `erased_party`
