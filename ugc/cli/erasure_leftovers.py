"""What an erased person still has that an erasure ends: the part of one that did not run to its end.

`ugc users erase` appends `User.Erased`, then drops the answers kept for the person's
`Idempotency-Key`s (they may show their e-mail and names), then withdraws their services, portfolio
items and creator skills and cancels their open orders. Killed in between, it leaves the person
erased in every way `ugc verify` otherwise checks (journal line, `User.Erased`, destroyed keys) while
those answers are kept for the day, or their services are still listed and take orders. The read
models name the candidates (no log lists one person's); each is confirmed on its aggregate, so a
read model a moment behind an erasure that did finish is never taken for one that did not. Only
answers of 2xx count: a request of theirs refused after the erasure keeps a 401, which shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from ugc.platform.database import Database
from ugc.platform.store import EventStores


def left_undone(stores: EventStores, db: Database, user_id: int) -> list[str]:
    """What erasing `user_id` again would still do, one phrase per kind (empty: nothing)."""
    from readmodels.creator_skills import skills_of_creator
    from readmodels.orders import cancellable_of_party
    from readmodels.portfolio import portfolio_of_creator
    from readmodels.services import active_of_creator
    from ugc.creator_skills import creator_skill_id
    from ugc.creators import creator_profile_id
    from ugc.orders import IN_PROGRESS, PENDING, order_id
    from ugc.platform.idempotency_keys import answers_kept_for
    from ugc.portfolio import portfolio_item_id
    from ugc.services import service_id

    found: list[tuple[str, list[int]]] = []
    profile = _get(stores.accounts, creator_profile_id(user_id))
    if profile is not None:
        creator = int(profile.number)
        items = [int(row["id"]) for row in portfolio_of_creator(db, creator)]
        skills = [int(row["id"]) for row in skills_of_creator(db, creator)]
        found += [
            (
                "service(s) offered",
                _live(stores.catalog, service_id, active_of_creator(db, creator), "is_active"),
            ),
            ("portfolio item(s) shown", _live(stores.catalog, portfolio_item_id, items, "deleted", False)),
            ("creator skill(s) shown", _live(stores.catalog, creator_skill_id, skills, "removed", False)),
        ]
    orders = [
        number
        for number in cancellable_of_party(db, user_id)
        if (order := _get(stores.orders, order_id(number))) is not None and order.status in (PENDING, IN_PROGRESS)
    ]
    found.append(("order(s) open", orders))
    undone = [f"{len(numbers)} {what}: {', '.join(map(str, numbers))}" for what, numbers in found if numbers]
    if kept := answers_kept_for(db, user_id):
        undone.insert(0, f"{kept} answer(s) kept for their Idempotency-Keys")
    return undone


def _live(
    app: Application[UUID], ids: Callable[[int], UUID], numbers: Sequence[int], flag: str, value: bool = True
) -> list[int]:
    """Those of `numbers` whose aggregate's `flag` is `value` in the log (not withdrawn there)."""
    return [
        number for number in numbers if (found := _get(app, ids(number))) is not None and getattr(found, flag) is value
    ]


def _get(app: Application[UUID], aggregate: UUID) -> Any | None:
    try:
        found: Any = app.repository.get(aggregate)
    except AggregateNotFoundError:
        return None
    return found
