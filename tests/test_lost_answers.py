"""Commands whose answer was lost to a fault are not applied twice, nor reported as refused.

Two cases the fault test (tests/test_faults.py) met with real processes, pinned here in-process:
a placed order whose wait for the read side timed out (503) and that is retried with its
`Idempotency-Key`; and a group of new orders whose COMMIT went through while its answer was lost,
so the library's retry of the save clashed with the save itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError
from starlette.testclient import TestClient

from commands.group_commit import GroupCommit
from tests.conftest import Api, new_client
from tests.orders_world import a_deal
from tests.test_group_commit import Numbers, Probe, Probes
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.store import eventsourcing_settings


def test_a_placed_order_whose_wait_timed_out_is_replayed_not_placed_again(
    settings: Settings, clock: MovableClock
) -> None:
    with new_client(settings, clock) as client:
        deal = a_deal(Api(client, settings))
    body: dict[str, Any] = {
        "service_id": deal.service["id"],
        "requirements": f"Обзор {uuid4().hex}",
        "delivery_date": (clock.now().date() + timedelta(days=10)).isoformat(),
        "selected_option_ids": [],
    }
    headers = deal.buyer["headers"] | {"Idempotency-Key": uuid4().hex}

    # No projection runs anywhere: the order is stored, the wait for the read side times out.
    stalled = dataclasses.replace(settings, projections="external", read_your_writes_timeout=0.3)
    with new_client(stalled, clock) as client:
        first = client.post("/api/v1/orders/", headers=headers, json=body)
        assert first.status_code == 503, first.text
        with new_client(settings, clock) as caught_up:  # its runner catches the read side up
            again = client.post("/api/v1/orders/", headers=headers, json=body)
            mine = orders_of(caught_up, deal.buyer["headers"], body["requirements"])
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["requirements"] == body["requirements"]
    assert [order["id"] for order in mine] == [again.json()["id"]]


def orders_of(client: TestClient, headers: dict[str, str], requirements: str) -> list[dict[str, Any]]:
    listed = client.get("/api/v1/orders/", headers=headers, params={"page_size": 100})
    assert listed.status_code == 200, listed.text
    return [order for order in listed.json()["results"] if order["requirements"] == requirements]


@pytest.fixture
def probes(database_url: str) -> Iterator[Application[UUID]]:
    app = Probes(env=eventsourcing_settings(database_url, Probes.name, create_table=True))
    yield app
    app.close()


def test_a_group_whose_commit_answer_was_lost_is_saved_once_and_answered(probes: Application[UUID]) -> None:
    insert = probes.recorder.insert_events

    def committed_then_retried(stored_events: Any, **kwargs: Any) -> Any:
        insert(stored_events, **kwargs)  # the COMMIT goes through; its answer never arrives
        return insert(stored_events, **kwargs)  # what the library's retry then does: a clash

    probes.recorder.insert_events = committed_then_retried  # type: ignore[method-assign]
    kind = uuid4().hex
    probe, positions = GroupCommit[int, Probe](probes, Numbers()).append(lambda n: Probe(kind, n, "once"))
    assert [e.originator_version for e in probes.events.get(probe.id)] == [1]
    assert positions == {"probes": probes.recorder.max_notification_id()}


def test_a_clash_with_another_aggregate_is_still_a_clash(probes: Application[UUID]) -> None:
    kind = uuid4().hex
    GroupCommit[int, Probe](probes, Numbers()).append(lambda n: Probe(kind, n, "first"))
    with pytest.raises(IntegrityError):  # the same number again, from a sequence that restarted
        GroupCommit[int, Probe](probes, Numbers()).append(lambda n: Probe(kind, n, "second"))
