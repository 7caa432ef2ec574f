"""A creator's new service, portfolio item or creator skill racing the creator's erasure, against a real
server: whatever the erasure left listed of theirs, it must have withdrawn; nothing of an erased person
is listed after it.

The write checks that its creator is not erased, then appends to the catalog's log; the erasure appends
`User.Erased` to the accounts log, then withdraws what the listings show of theirs. Held at the
catalog's append (the test holds the lock every append takes) while `ugc users erase` ran, the write
was appended after the erasure had read the listings: 201, and it stayed listed for a person erased.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.backends import environment
from tests.conftest import Api
from tests.servers import Server, served_fresh
from tests.test_api_creator_skills import reference_skills
from tests.test_api_portfolio import PNG
from ugc import cli
from ugc.config import Settings, sqlite_path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

UNAUTHORIZED = {"detail": "Токен недействителен или просрочен."}
SQLITE_AT_APPEND = 0.5  # seconds for the request to reach its append on SQLite, where no waiter shows


@dataclass(frozen=True)
class Write:
    """A creator's write that adds to a listing: (client, creator, skill) -> response; and what the
    listings show of the creator's afterwards: (client, creator) -> ids."""

    send: Callable[[httpx.Client, dict[str, Any], int], httpx.Response]
    listed: Callable[[httpx.Client, dict[str, Any]], list[int]]


def _services(client: httpx.Client, creator: dict[str, Any]) -> list[int]:
    answer = client.get("/api/v1/services/", params={"creator": creator["profile"]["id"]}).json()
    return [service["id"] for service in answer["results"]]


def _portfolio(client: httpx.Client, creator: dict[str, Any]) -> list[int]:
    answer = client.get("/api/portfolio/", params={"creator_profile_id": creator["profile"]["id"]}).json()
    return [item["id"] for item in answer["results"]]


def _skills(client: httpx.Client, creator: dict[str, Any]) -> list[int]:
    # Anyone signed in may list a creator's skills; the creator's own token is refused by now.
    reader = Api(client, None).user()  # type: ignore[arg-type]
    answer = client.get(
        "/api/creator-skills/", params={"creator_profile_id": creator["profile"]["id"]}, headers=reader["headers"]
    ).json()
    return [skill["id"] for skill in answer["results"]]


def _offer(client: httpx.Client, creator: dict[str, Any], _: int) -> httpx.Response:
    category = client.get("/api/v1/categories/").json()["results"][0]["id"]
    body = {"title": "Обзор", "description": "Сниму", "category_id": category, "base_price": 1000, "delivery_time": 7}
    return client.post("/api/v1/services/", headers=creator["headers"], json=body)


WRITES = {
    "service": Write(_offer, _services),
    "portfolio_item": Write(
        lambda client, creator, _: client.post(
            "/api/portfolio/",
            headers=creator["headers"],
            data={"title": "Логотип", "description": "Для компании"},
            files={"cover_image": ("c.png", PNG, "image/png")},
        ),
        _portfolio,
    ),
    "creator_skill": Write(
        lambda client, creator, skill: client.post(
            "/api/creator-skills/", headers=creator["headers"], json={"skill": skill, "level": 4}
        ),
        _skills,
    ),
    "bulk_update": Write(
        lambda client, creator, skill: client.post(
            "/api/creator-skills/bulk_update/", headers=creator["headers"], json=[{"skill_id": skill, "level": 4}]
        ),
        _skills,
    ),
}


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("erasure-race-var")) as served:
        yield served


@contextmanager
def catalog_held(settings: Settings) -> Iterator[Callable[[], None]]:
    """Hold the lock the catalog's appends take; yield a wait until an append is waiting for it."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as held, held.transaction():
            held.execute("LOCK TABLE catalog_events IN EXCLUSIVE MODE")

            def waiting() -> None:
                query = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'catalog_events'::regclass"
                with psycopg.connect(url, autocommit=True) as looking:
                    while looking.execute(query).fetchone() == (0,):
                        time.sleep(0.01)

            yield waiting
        return
    main = Path(sqlite_path(url))
    held_file = sqlite3.connect(main.with_name(f"{main.stem}.catalog{main.suffix}"), isolation_level=None)
    try:
        held_file.execute("BEGIN IMMEDIATE")
        yield lambda: time.sleep(SQLITE_AT_APPEND)
        held_file.execute("ROLLBACK")
    finally:
        held_file.close()


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_held_at_its_append_while_its_creator_is_erased_leaves_nothing_listed(
    write: str, backend: str, server: tuple[Server, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, settings = server
    for name, value in environment(backend, settings.database_url, settings.var_dir).items():
        monkeypatch.setenv(name, value)  # `ugc users erase` runs here: a process of its own takes seconds to start
    plan = WRITES[write]
    with httpx.Client(base_url=running.url, timeout=30) as client:
        api = Api(client, settings)  # type: ignore[arg-type]
        creator = api.creator()
        skill = next(iter(reference_skills(client).values()))["id"]
        answers: list[httpx.Response] = []

        def send() -> None:
            with httpx.Client(base_url=running.url, timeout=30) as own:
                answers.append(plan.send(own, creator, skill))

        with catalog_held(settings) as waiting:
            sending = threading.Thread(target=send)
            sending.start()
            waiting()
            assert cli.main(["users", "erase", creator["username"], "--yes"]) == 0
        sending.join()
        (answer,) = answers
        assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED), answer.text
        assert plan.listed(client, creator) == []  # the 401 waited for the withdrawal to be applied
