"""Events can evolve without losing the log: versions, their recorded fields, and golden payloads.

Every stored event class declares `class_version`; its fields must be the ones recorded for that
version (tests/fixtures/events/fingerprints.json), so changing an event without a new version and
an upcaster fails here; and a stored payload of every version (tests/golden_events.py) decodes
with today's code into an event whose every field is present and of its declared type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from tests.golden_events import FIXTURES, fingerprint, fixture_path, recorded_fingerprints
from ugc.events import INTERNAL_FIELDS, STORED, Caused, stored_as
from ugc.platform.log_check import problem_with
from ugc.platform.store import Orders

GOLDEN = sorted(FIXTURES.glob("*/v*.json"))


MAPPER = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper  # the applications' own


def as_stored(kept: dict[str, Any]) -> StoredEvent:
    """A stored event as tests/golden_events.py keeps it."""
    return StoredEvent(
        originator_id=UUID(kept["originator_id"]),
        originator_version=kept["originator_version"],
        topic=kept["topic"],
        state=json.dumps(kept["state"]).encode(),
    )


def test_every_stored_event_class_has_the_fields_recorded_for_its_version() -> None:
    recorded = recorded_fingerprints()
    changed = {
        topic: version
        for topic, cls in STORED.items()
        if recorded.get(topic, {}).get(version := str(getattr(cls, "class_version", 1))) != fingerprint(cls)
    }
    assert changed == {}, (
        "these events' fields are not the ones recorded for their class_version: give the class a new "
        "class_version and an upcaster, then run `python -m tests.golden_events` and commit what it adds"
    )


def test_every_version_of_every_event_has_a_golden_payload() -> None:
    missing = [
        f"{topic} v{version}"
        for topic, cls in STORED.items()
        for version in range(1, getattr(cls, "class_version", 1) + 1)
        if not fixture_path(topic, version).exists()
    ]
    assert missing == []


def test_every_golden_payload_is_of_a_known_event() -> None:
    assert {path.parent.name for path in GOLDEN} == set(STORED)


def test_internal_fields_are_in_no_current_event_and_each_in_some_stored_one() -> None:
    """The set the audit record leaves out of stored payloads names fields the log really holds."""
    assert [topic for topic, cls in STORED.items() if INTERNAL_FIELDS & set(fingerprint(cls))] == []
    stored = {name for path in GOLDEN for name in json.loads(path.read_text())["state"]}
    assert stored >= INTERNAL_FIELDS


@pytest.mark.parametrize("path", GOLDEN, ids=lambda path: f"{path.parent.name}-{path.stem}")
def test_a_golden_payload_decodes_with_every_field_present_and_typed(path: Path) -> None:
    stored = as_stored(json.loads(path.read_text()))
    assert problem_with(MAPPER, stored) is None
    event = MAPPER.to_domain_event(stored)
    assert type(event) is STORED[stored.topic]
    assert set(vars(event)) == set(fingerprint(type(event)))
    assert isinstance(event.timestamp, datetime) and event.timestamp.tzinfo is not None


def test_a_payload_missing_a_field_or_of_a_wrong_type_is_named() -> None:
    kept = json.loads(fixture_path("ugc.Order.Cancelled", 2).read_text())
    del kept["state"]["reason"]
    assert "missing reason" in (problem_with(MAPPER, as_stored(kept)) or "")
    kept = json.loads(fixture_path("ugc.Order.Cancelled", 2).read_text())
    kept["state"]["reason"] = 5
    assert "reason is 5, not <class 'str'>" in (problem_with(MAPPER, as_stored(kept)) or "")
    kept["topic"] = "ugc.Order.Vanished"
    assert (problem_with(MAPPER, as_stored(kept)) or "").startswith("does not decode")


def test_an_event_class_without_its_own_version_or_an_actor_is_refused_at_import() -> None:
    def aggregate(version: bool, caused: bool) -> type:
        bases = (Caused, Aggregate.Event) if caused else (Aggregate.Event,)
        body: dict[str, Any] = {"TOPIC": "tests.Probe.Happened", "__annotations__": {"at": "datetime"}}
        if version:
            body["class_version"] = 1
        happened: type = dataclass(frozen=True)(type("Happened", bases, body))
        return type("Probe", (Aggregate,), {"Happened": happened})

    with pytest.raises(TypeError, match="class_version"):
        stored_as(aggregate(version=False, caused=True))
    with pytest.raises(TypeError, match="who caused it"):
        stored_as(aggregate(version=True, caused=False))
