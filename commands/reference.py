"""Loads the reference categories and skills as events, once, however often it runs."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from commands.saving import Positions
from ugc.catalog import Category, Skill
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.ids import claim_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores


def reference_data() -> dict[str, Any]:
    text = resources.files("ugc").joinpath("reference_data.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def load_reference_data(stores: EventStores, db: Database, clock: Clock, actor: str) -> Positions:
    """Create each category and skill not created yet; a claim on its slug/name keeps it single.

    `actor`: the operator whose command (`ugc serve`, `ugc seed`) loads them.
    """
    app = stores.catalog
    data = reference_data()
    positions: Positions = {}
    items = [("category", c["slug"], c) for c in data["categories"]] + [("skill", s["name"], s) for s in data["skills"]]
    for kind, key, item in items:
        try:
            app.repository.get(claim_id(kind, key))
            continue
        except AggregateNotFoundError:
            pass
        now = clock.now()
        number = db.next_number(kind)
        claim = Claim(kind=kind, value=key, owner_number=number, at=now, actor=actor)
        if kind == "category":
            created: Category | Skill = Category(
                number=number, name=item["name"], slug=item["slug"], at=now, actor=actor
            )
        else:
            created = Skill(number=number, name=item["name"], description=item["description"], at=now, actor=actor)
        try:
            recordings = app.save(claim, created)
        except IntegrityError:
            continue  # another process loaded it at the same moment
        positions[app.name] = recordings[-1].notification.id
    return positions
