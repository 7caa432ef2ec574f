"""A write to a creator skill racing the skill's removal, against a real server: a write that was
saved answers what it saved; one decided after the removal is refused as for a removed skill.

Fired from two threads, many rounds over, as `tests/test_portfolio_races.py` does for portfolio
pieces. Whether the write was saved is read from the events afterwards. Read back from the read
model once saved, a write could find the removal projected already, and answered 404 for what it
had saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.backends import DATA_KEY
from tests.conftest import Api
from tests.servers import Server, served_fresh
from tests.test_api_creator_skills import NOT_FOUND, added, reference_skills
from tests.test_portfolio_races import ROUNDS, SPREAD, at_once
from ugc.config import Settings
from ugc.creator_skills import CreatorSkill, creator_skill_id
from ugc.platform.store import EventStores

pytestmark = pytest.mark.e2e

OLD, NEW = 2, 5


@dataclass(frozen=True)
class Race:
    """A write to send beside the skill's removal: (client, headers, creator skill, skill) -> response;
    whether it was saved, from the stored aggregate; its status when saved; whether the skill is
    removed before the round (an add brings it back under its old id)."""

    send: Callable[[httpx.Client, dict[str, str], int, int], httpx.Response]
    saved: Callable[[CreatorSkill], bool]
    status: int
    removed_first: bool = False


RACES = {
    "change_level": Race(
        lambda client, headers, number, _: client.patch(
            f"/api/creator-skills/{number}/", headers=headers, json={"level": NEW}
        ),
        lambda skill: skill.level == NEW,
        200,
    ),
    "replace_level": Race(
        lambda client, headers, number, _: client.put(
            f"/api/creator-skills/{number}/", headers=headers, json={"level": NEW}
        ),
        lambda skill: skill.level == NEW,
        200,
    ),
    "add_again": Race(
        lambda client, headers, _, skill: client.post(
            "/api/creator-skills/", headers=headers, json={"skill": skill, "level": NEW}
        ),
        # Added, removed (set up), restored by the add; removed again if the removal came after.
        lambda skill: skill.version >= 3,
        201,
        removed_first=True,
    ),
}


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("creator-skill-race-var")) as served:
        yield served


def _remove_after(client: httpx.Client, seconds: float, number: int, headers: dict[str, str]) -> httpx.Response:
    time.sleep(seconds)
    return client.delete(f"/api/creator-skills/{number}/", headers=headers)


@pytest.mark.parametrize("race", list(RACES))
def test_a_write_racing_the_skills_removal_answers_what_it_saved(race: str, server: tuple[Server, Settings]) -> None:
    running, settings = server
    plan = RACES[race]
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as setup:
            api = Api(setup, settings)  # type: ignore[arg-type]
            skills = list(reference_skills(setup).values())
            outcomes: list[tuple[bool, int]] = []
            creators: list[dict[str, Any]] = []
            for round_number in range(ROUNDS):
                # Each round a skill its creator never had, whatever the rounds before left of theirs.
                turn, index = divmod(round_number, len(skills))
                if turn == len(creators):
                    creators.append(api.creator())
                creator = creators[turn]
                headers = creator["headers"]
                skill = skills[index]["id"]
                number = added(api, creator, skill, OLD)["id"]
                if plan.removed_first:
                    gone = setup.delete(f"/api/creator-skills/{number}/", headers=headers)
                    assert gone.status_code == 204, gone.text
                late = SPREAD * (round_number % 10) / 10

                def send_write(
                    client: httpx.Client, headers: dict[str, str] = headers, number: int = number, skill: int = skill
                ) -> httpx.Response:
                    return plan.send(client, headers, number, skill)

                def send_removal(
                    client: httpx.Client, headers: dict[str, str] = headers, number: int = number, late: float = late
                ) -> httpx.Response:
                    return _remove_after(client, late, number, headers)

                write, removal = at_once(running.url, send_write, send_removal)
                stored: CreatorSkill = stores.catalog.repository.get(creator_skill_id(number))
                saved = plan.saved(stored)
                outcomes.append((saved, write.status_code))
                if saved:
                    assert write.status_code == plan.status, (outcomes, write.text)
                    answer: dict[str, Any] = write.json()
                    assert (answer["id"], answer["skill"]["id"], answer["level"]) == (number, skill, NEW), answer
                    assert answer["creator_profile"] == creator["profile"]["id"], answer
                else:
                    assert (write.status_code, write.json()) == (404, NOT_FOUND), (outcomes, write.text)
                assert removal.status_code in (204, 404), removal.text
    finally:
        stores.close()
