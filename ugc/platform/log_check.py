"""`ugc events check`: does the current code still read the stored log?

Every stored event is decoded as the applications read it (upcasters included), then held to its
class: a field missing (a shape changed without a new `class_version` and upcaster) or of another
type than declared is a finding, as is an event that does not decode at all (an unknown topic, a
failing upcaster). The whole log, or a random sample of each application's.
"""

from __future__ import annotations

import dataclasses
import random
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Union
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from ugc.platform.store import EventStores

PAGE = 500


@dataclass(frozen=True)
class Finding:
    application: str
    position: int
    topic: str
    originator_id: UUID | str
    version: int
    problem: str

    def __str__(self) -> str:
        return (
            f"{self.application} position {self.position}: {self.topic} of {self.originator_id} "
            f"v{self.version}: {self.problem}"
        )


def check_log(
    stores: EventStores,
    *,
    sample: int | None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    rng: random.Random | None = None,
) -> tuple[int, list[Finding]]:
    """Decode every stored event (`sample` None) or `sample` random ones of each application.

    Returns how many were checked and what was wrong; `progress(done, total)` is told as it goes.
    Both go by the runs of positions that hold events, not by the heads: a restore moves a log's
    positions far on (`restore_floors.py`), so nearly all positions up to its head hold none.
    """
    runs = {name: stores.chained(name).runs() for name in stores.applications}
    counts = {name: _count(spans) for name, spans in runs.items()}
    total = sum(counts.values()) if sample is None else sum(min(sample, count) for count in counts.values())
    checked, findings = 0, []
    for name, spans in runs.items():
        app = stores[name]
        chosen = (
            _everything(app.recorder, spans[-1][1] if spans else 0)
            if sample is None
            else _sampled(app.recorder, spans, sample, rng)
        )
        for stored in chosen:
            problem = problem_with(app.mapper, stored)
            if problem is not None:
                findings.append(
                    Finding(name, stored.id, stored.topic, stored.originator_id, stored.originator_version, problem)
                )
            checked += 1
            if checked % PAGE == 0:
                progress(checked, total)
    if checked % PAGE or not checked:  # the last word, unless it was just said
        progress(checked, total)
    return checked, findings


def _everything(recorder: Any, head: int) -> Iterator[Notification]:
    start = 1
    while start <= head:
        page = recorder.select_notifications(start=start, limit=PAGE, stop=head)
        if not page:
            return
        yield from page
        start = page[-1].id + 1


def _sampled(
    recorder: Any, runs: list[tuple[int, int]], size: int, rng: random.Random | None
) -> Iterator[Notification]:
    """`size` distinct events at random, each as likely as any other: random ranks among the events
    of `runs`, each read at the position its rank falls on (no draw lost to a gap)."""
    count = _count(runs)
    ranks = iter(sorted((rng or random.Random()).sample(range(count), min(size, count))))
    rank = next(ranks, None)
    before = 0  # the events of the runs before this one
    for first, last in runs:
        while rank is not None and rank < before + last - first + 1:
            position = first + rank - before
            yield from recorder.select_notifications(start=position, limit=1, stop=position)
            rank = next(ranks, None)
        before += last - first + 1


def _count(runs: list[tuple[int, int]]) -> int:
    return sum(last - first + 1 for first, last in runs)


def problem_with(mapper: Any, stored: StoredEvent) -> str | None:
    """What keeps `stored` from decoding into an event of its class with every field of its type (None: nothing)."""
    try:
        event = mapper.to_domain_event(stored)
    except Exception as error:  # any failure to decode is what this check reports
        return f"does not decode: {type(error).__name__}: {error}"
    declared = _declared(type(event))
    missing = sorted(set(declared) - set(vars(event)))
    if missing:
        return f"missing {', '.join(missing)} (a changed shape without a new class_version and upcaster?)"
    unknown = sorted(set(vars(event)) - set(declared))
    if unknown:
        return f"undeclared {', '.join(unknown)}"
    wrong = [name for name, hint in declared.items() if not conforms(vars(event)[name], hint)]
    if wrong:
        return "; ".join(f"{name} is {vars(event)[name]!r}, not {declared[name]}" for name in wrong)
    return None


_DECLARED: dict[type, dict[str, Any]] = {}


def _declared(event_class: type) -> dict[str, Any]:
    """The event's fields and their resolved types (resolved once per class)."""
    if event_class not in _DECLARED:
        hints = typing.get_type_hints(event_class)
        _DECLARED[event_class] = {field.name: hints[field.name] for field in dataclasses.fields(event_class)}
    return _DECLARED[event_class]


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` is of the annotated type `hint`, for the types events use (generics, unions, Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if isinstance(hint, typing.TypeVar):  # the library's originator id: a UUID here
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
    return isinstance(hint, type) and isinstance(value, hint)
