"""The audit record of an order: one entry per stored event, the same over HTTP and in `ugc history`.

`audit_record` is the one function that builds it, for `GET /api/v1/orders/{id}/history/` and for
`ugc history order ID --json`; both write it with the platform's JSON encoder, so times (ISO 8601
UTC with `Z` and six fractional digits) and money (JSON numbers) read alike. An entry holds what the event says happened
(`data`: its domain fields, upcast to the current shape, without the store's envelope and without
what version 1 stored for presentation — `INTERNAL_FIELDS`) and, beside it, who caused it and how
it was recorded: its position in the log, the recording time, and what its chain hash covers — the
stream, the stored topic and the stored state text as it is (`payload`) — with the hash and the one
it chains to, so that anyone can recompute them (README, "Audit: the hash chain";
tests/third_party_check.py). `as_table` shows the same entries to a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from readmodels.order_history import AsOf, EventLog, events_as_of, order_events
from ugc.events import INTERNAL_FIELDS, actor_parts
from ugc.orders import EVENT_NAMES, Order
from ugc.platform.chain import RecordedEvent, format_time
from ugc.platform.encoding import dumps
from ugc.platform.recorded_log import Logged

# Attributes of a decoded event that are not its facts: the library's envelope, and what every
# entry shows in a key of its own (`occurred_at`, `actor`, `request_id`).
_NOT_DATA = INTERNAL_FIELDS | {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "at",
    "actor",
    "request_id",
}


def order_record(log: EventLog, order: int, as_of: AsOf | None = None) -> list[dict[str, Any]]:
    """The audit record of order `order`, up to `as_of` (see readmodels/order_history.py)."""
    return audit_record(events_as_of(order_events(log, order), as_of))


def audit_record(events: Sequence[Logged]) -> list[dict[str, Any]]:
    """One entry per event of an order (oldest first), with JSON-ready values (datetimes, Decimals)."""
    names: dict[int, str] = {}
    for logged in events:
        if isinstance(e := logged.event, Order.Placed):  # the parties' usernames when the order was placed
            names = {e.buyer: e.buyer_username, e.creator: e.creator_username}
    return [entry(logged.event, logged.recorded, names) for logged in events]


def entry(e: Any, recorded: RecordedEvent, names: Mapping[int, str]) -> dict[str, Any]:
    """What happened, who caused it and when; then where the log holds it and what its hash covers."""
    return {
        "version": e.originator_version,
        "type": EVENT_NAMES[type(e)],
        # Both times as text of six fractional digits: orjson leaves a zero fraction out
        # ("…T10:00:00Z"), and recorded_at is what an auditor copies into the hashed canonical JSON
        # (README: "Audit: the hash chain"), where it always has six.
        "occurred_at": format_time(e.at),
        "actor": actor(e.actor, names),
        "request_id": e.request_id,
        "data": {name: value for name, value in vars(e).items() if name not in _NOT_DATA},
        "position": recorded.position,
        "recorded_at": format_time(recorded.recorded_at),
        "stream": str(recorded.stream),
        "topic": recorded.topic,
        # The stored state as it is (version 1's internals included): the text the hash covers.
        "payload": recorded.state.decode("utf-8", errors="replace"),
        "hash": _hex(recorded.hash),
        "previous_hash": _hex(recorded.previous_hash),
    }


def _hex(digest: bytes | None) -> str | None:
    return None if digest is None else digest.hex()


def actor(stored: str, names: Mapping[int, str]) -> dict[str, Any]:
    """`{kind, id, username}`: a user (id, and username if a party), the system's scheduler
    (username "scheduler"), a CLI operator (their login) or, for events from before actors were
    recorded, `unrecorded` (both null)."""
    kind, ident = actor_parts(stored)
    if isinstance(ident, int):
        return {"kind": kind, "id": ident, "username": names.get(ident)}
    return {"kind": kind, "id": None, "username": ident}


def as_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """The entries as aligned columns, one event a line; values as the JSON record writes them."""
    header = ("VERSION", "OCCURRED AT", "TYPE", "ACTOR", "REQUEST", "DATA")
    rows = [header] + [
        (
            str(entry["version"]),
            _json(entry["occurred_at"]).strip('"'),
            entry["type"],
            _who(entry["actor"]),
            entry["request_id"] or "-",
            " ".join(f"{name}={_json(value)}" for name, value in entry["data"].items()) or "-",
        )
        for entry in entries
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    )


def _who(entry: Mapping[str, Any]) -> str:
    if entry["kind"] == "user":
        return f"{entry['username'] or '?'} (user {entry['id']})"
    return f"{entry['kind']}:{entry['username']}" if entry["username"] else entry["kind"]


def _json(value: Any) -> str:
    return dumps(value).decode()
