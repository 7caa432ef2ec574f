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


def _registration() -> dict[str, str]:
    name = f"user_{uuid4().hex[:10]}"
    return {
        "username": name,
        "email": f"{name}@example.com",
        "password": "correct-horse-battery",
        "first_name": "Анна",
        "last_name": "Смирнова",
    }


def test_a_registration_whose_wait_timed_out_is_answered_again_not_refused_as_taken(
    settings: Settings, clock: MovableClock
) -> None:
    body = _registration()
    # No projection runs anywhere: the user is stored, the wait for the read side times out. A
    # registration takes no Idempotency-Key, so the client's retry is the same body again.
    stalled = dataclasses.replace(settings, projections="external", read_your_writes_timeout=0.3)
    with new_client(stalled, clock) as client:
        first = client.post("/api/auth/register/", json=body)
        assert first.status_code == 503, first.text
        with new_client(settings, clock) as caught_up:  # its runner catches the read side up
            again = client.post("/api/auth/register/", json=body)
            other = caught_up.post("/api/auth/register/", json=body | {"password": "another-horse-battery"})
            renamed = caught_up.post("/api/auth/register/", json=body | {"first_name": "Ольга"})
            tokens = caught_up.post(
                "/api/auth/token/", json={"username": body["username"], "password": body["password"]}
            )
            me = caught_up.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {tokens.json()['access']}"})
    assert again.status_code == 201, again.text
    assert again.json() == {key: value for key, value in body.items() if key != "password"} | {"id": me.json()["id"]}
    # Only the same registration is answered again: anyone else is told the name is taken, as before.
    assert other.status_code == 409, other.text
    assert renamed.status_code == 409, renamed.text


def test_a_registration_sent_again_with_another_password_counts_as_a_failed_sign_in(
    settings: Settings, clock: MovableClock
) -> None:
    """Answered 201 for the right password, the same registration would be a way to guess an unverified
    account's password past the sign-ins' limit (10 a username from one address in 15 minutes)."""
    body = _registration()
    with new_client(settings, clock) as client:
        assert client.post("/api/auth/register/", json=body).status_code == 201
        guesses = [
            client.post("/api/auth/register/", json=body | {"password": f"guess-number-{n}"}).status_code
            for n in range(11)
        ]
        right = client.post("/api/auth/register/", json=body)
        sign_in = client.post("/api/auth/token/", json={"username": body["username"], "password": body["password"]})
        with new_client(settings, clock) as elsewhere:  # the limit is the guessing address's
            taken = elsewhere.post("/api/auth/register/", json=body | {"email": "other@example.com"})
            assert elsewhere.post("/api/auth/register/", json=body).status_code == 201
    assert guesses == [409] * 10 + [429]
    assert (right.status_code, sign_in.status_code) == (429, 429)
    assert taken.status_code == 409, taken.text  # an ordinary taken name counts nothing


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
