"""The event stores' orjson decoding reads every stored state as the library's own decoder does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

from ugc.platform.transcoder import OrjsonTranscoder


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


STATES: list[dict[str, Any]] = [
    {"at": datetime(2026, 12, 3, 6, 0, 1, 123456, tzinfo=UTC), "price": Decimal("150.50"), "id": uuid4()},
    # Typed values inside lists and objects, an object that only looks typed, text in Cyrillic.
    {
        "options": [{"id": 1, "price": Decimal("200.00")}, {"id": 2, "price": Decimal("0.5"), "tags": []}],
        "changes": {"delivery_date": "2026-12-20", "requirements": "Иначе"},
        "nested": [[{"when": datetime(2026, 1, 1, tzinfo=UTC)}], []],
        "look_alike": {"_type_": "decimal_str", "other": "1"},
        "nothing": None,
        "flag": True,
        "ratio": 0.1,
    },
    # What orjson refuses and the standard library reads: integers past 64 bits, NaN.
    {"number": 2**70, "at": datetime(2026, 12, 3, tzinfo=UTC)},
    {"ratio": float("inf")},
]


@pytest.mark.parametrize("state", STATES)
def test_decodes_what_the_library_decodes(state: dict[str, Any]) -> None:
    library = registered(JSONTranscoder())
    stored = library.encode(state)
    decoded = registered(OrjsonTranscoder()).decode(stored)
    assert decoded == library.decode(stored) == state
    assert [type(value) for value in decoded.values()] == [type(value) for value in state.values()]


def test_an_unregistered_type_fails_as_in_the_library() -> None:
    stored = b'{"at": {"_type_": "unknown", "_data_": "x"}}'
    with pytest.raises(Exception, match="unknown") as ours:
        registered(OrjsonTranscoder()).decode(stored)
    with pytest.raises(Exception, match="unknown") as theirs:
        registered(JSONTranscoder()).decode(stored)
    assert type(ours.value) is type(theirs.value)
