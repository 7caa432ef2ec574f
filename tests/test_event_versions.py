"""Events can evolve without losing the log: versions, their recorded fields, and golden payloads.

Every stored event class declares `class_version`; its fields must be the ones recorded for that
version (tests/fixtures/events/fingerprints.json), so changing an event without a new version and
an upcaster fails here; and a stored payload of every version (tests/golden_events.py) decodes
with today's code into an event whose every field is present and of its declared type.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any, Union
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from tests.golden_events import FIXTURES, fingerprint, fixture_path, recorded_fingerprints
from ugc.events import INTERNAL_FIELDS, STORED
from ugc.platform.store import Orders

GOLDEN = sorted(FIXTURES.glob("*/v*.json"))


def decode(stored: dict[str, Any]) -> Any:
    """A stored event (as tests/golden_events.py keeps it) decoded by the applications' mapper."""
    mapper = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    return mapper.to_domain_event(
        StoredEvent(
            originator_id=UUID(stored["originator_id"]),
            originator_version=stored["originator_version"],
            topic=stored["topic"],
            state=json.dumps(stored["state"]).encode(),
        )
    )


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` is of the annotated type `hint` (the generics events use: list, dict, unions)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if isinstance(hint, typing.TypeVar):  # the library's originator id: UUID here
        return isinstance(value, UUID)
    if origin in (Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    assert origin is None, f"no rule for {hint}"
    return isinstance(value, hint)


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
    stored = json.loads(path.read_text())
    event = decode(stored)
    cls = STORED[stored["topic"]]
    assert type(event) is cls
    hints = typing.get_type_hints(cls)
    fields = set(fingerprint(cls))
    assert set(vars(event)) == fields
    wrong = {name: vars(event)[name] for name in fields if not conforms(vars(event)[name], hints[name])}
    assert wrong == {}
    assert isinstance(event.timestamp, datetime) and event.timestamp.tzinfo is not None
