"""Stable names for stored events.

Each event class carries an explicit `TOPIC` (the name stored with it), so moving or renaming a
class never orphans the log. `eventsourcing` registers such topics only when the aggregate class
has a `TOPIC` of its own; `stored_as` registers them for our aggregates, at import, so a process
can decode events it never wrote (a restart, another server, the projector).

Each event class also declares its own `class_version`: the log keeps every shape an event ever
had, so a change of fields is a new version with an `upcast_vN_vM` static method that turns the
stored state of version N into version M's (the library chains them on read). `STORED` lists every
stored event class by topic; tests/test_event_versions.py holds each version's fields to the ones
recorded for it and decodes a stored payload of every version.

Every event also says who and why (`Caused`): its `actor` — a user (`user:42`), the scheduler
(`system:scheduler`) or the operator of a CLI command (`operator:<login>`); `unrecorded` only for
events stored before actors were recorded, whose upcasters could not tell — and `request_id`, the
id of the HTTP request that caused it (None for the scheduler's and the CLI's events). The actor is
a decision's input, so commands pass it explicitly; the request id is the edge's business, so the
API sets `current_request` (a context variable) and every event created under it records it.

Aggregates edited field by field record one `Updated` event whose `changes` hold only what
differs; `changed_fields` picks those and `apply_changes` replays them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import register_topic

A = TypeVar("A", bound=type)

# Names a stored payload may hold that are no domain fact: version 1 of the order events and of
# Message.Sent stored whom to notify and the Russian line to show them. Their upcasters drop them;
# what shows a stored payload as it is (the audit record) leaves them out.
INTERNAL_FIELDS = frozenset({"notify", "notice"})

SCHEDULER = "system:scheduler"
UNRECORDED = "unrecorded"
current_request: ContextVar[str | None] = ContextVar("current_request", default=None)


def user_actor(number: int) -> str:
    return f"user:{number}"


def operator_actor(login: str) -> str:
    return f"operator:{login}"


def actor_parts(actor: str) -> tuple[str, int | str | None]:
    """The stored actor as (kind, id).

    ("user", 42), ("system", "scheduler"), ("operator", "<login>"), or ("unrecorded", None).
    """
    kind, _, ident = actor.partition(":")
    if kind == "user":
        return kind, int(ident)
    return kind, ident or None


def actor_user(actor: str) -> int | None:
    """The user number of a user's actor, None for anyone else."""
    kind, ident = actor_parts(actor)
    return ident if kind == "user" and isinstance(ident, int) else None


@dataclass(frozen=True)
class Caused:
    """What every event records beside its facts: who caused it, and the HTTP request it came from.

    A base of every stored event class (`class Sent(Caused, Aggregate.Created)`; `stored_as` refuses
    one without it). Keyword-only, so an event's own fields, without defaults, may follow these.
    """

    actor: str = field(kw_only=True)
    request_id: str | None = field(default_factory=current_request.get, kw_only=True)


def upcast_cause(state: dict[str, Any], actor: str = UNRECORDED) -> None:
    """Upcast a stored state from before `Caused`: its `actor` (what the event itself tells, if it does), no request."""
    state["actor"] = actor
    state["request_id"] = None


STORED: dict[str, type[CanMutateAggregate[Any]]] = {}  # every stored event class, by topic


def stored_as(aggregate_class: A) -> A:
    """Class decorator: register the `TOPIC` of every event class the aggregate defines (each with its
    own `class_version`, each `Caused`)."""
    for value in vars(aggregate_class).values():
        topic = getattr(value, "TOPIC", None)
        if isinstance(value, type) and issubclass(value, CanMutateAggregate) and topic:
            declared = next(cls for cls in value.__mro__ if "TOPIC" in vars(cls))  # the library subclasses it
            if not isinstance(vars(declared).get("class_version"), int):
                raise TypeError(f"{topic} must declare its own class_version")
            if not issubclass(value, Caused):
                raise TypeError(f"{topic} must record who caused it: make it a Caused event")
            register_topic(topic, value)
            STORED[topic] = value
    return aggregate_class


def changed_fields(current: object, changes: Mapping[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """The entries of `changes` that name one of `fields` and differ from what `current` holds."""
    return {name: value for name, value in changes.items() if name in fields and getattr(current, name) != value}


def apply_changes(aggregate: object, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        setattr(aggregate, name, value)
