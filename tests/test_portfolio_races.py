"""A change to a portfolio item racing the item's deletion, against a real server: a change that was
saved answers what it saved; one decided after the deletion is refused as for a deleted item.

Fired from two threads, many rounds over. Whether the change was saved is read from the events
afterwards. Read back from the read model once saved, a change could find the deletion projected
already, and answered 404 for what it had saved: each of the three changes did so on one backend
or both within 30 rounds (5 of the 6 tests failed in one run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.backends import DATA_KEY
from tests.conftest import Api
from tests.servers import Server, served_fresh
from tests.test_api_portfolio import NOT_FOUND, PNG, added_image, created
from ugc.config import Settings
from ugc.platform.store import EventStores
from ugc.portfolio import PortfolioImage, PortfolioItem, portfolio_image_id, portfolio_item_id

pytestmark = pytest.mark.e2e

ROUNDS = 30
SPREAD = 0.05  # seconds over which the deletion's start is spread
NEW = "Новая подпись"


@dataclass(frozen=True)
class Race:
    """A change to send beside the item's deletion: (client, headers, item, image) -> response; whether
    it was saved, from the stored events: (stores, item, image); its status when saved, and its answer
    when refused (decided after the deletion)."""

    send: Callable[[httpx.Client, dict[str, str], int, int], httpx.Response]
    saved: Callable[[EventStores, int, int], bool]
    status: int
    refused: Callable[[httpx.Response], bool]


def _item(stores: EventStores, number: int) -> PortfolioItem:
    item: PortfolioItem = stores.catalog.repository.get(portfolio_item_id(number))
    return item


def _image(stores: EventStores, number: int) -> PortfolioImage:
    image: PortfolioImage = stores.catalog.repository.get(portfolio_image_id(number))
    return image


def _not_found(response: httpx.Response) -> bool:
    return (response.status_code, response.json()) == (404, NOT_FOUND)


RACES = {
    "update_item": Race(
        lambda client, headers, item, _: client.patch(f"/api/portfolio/{item}/", headers=headers, json={"title": NEW}),
        lambda stores, item, _: _item(stores, item).title == NEW,
        200,
        _not_found,
    ),
    "add_image": Race(
        lambda client, headers, item, _: client.post(
            "/api/portfolio-images/",
            headers=headers,
            data={"portfolio_item": str(item), "caption": NEW},
            files={"image": ("v.png", PNG, "image/png")},
        ),
        # Created, the first image attached (set up), the second attached, deleted.
        lambda stores, item, _: _item(stores, item).version == 4,
        201,
        lambda response: response.status_code == 422 and "portfolio_item" in response.json()["fields"],
    ),
    "update_image": Race(
        lambda client, headers, _, image: client.patch(
            f"/api/portfolio-images/{image}/", headers=headers, json={"caption": NEW}
        ),
        lambda stores, _, image: _image(stores, image).caption == NEW,
        200,
        _not_found,
    ),
}


def _delete_after(client: httpx.Client, seconds: float, item: int, headers: dict[str, str]) -> httpx.Response:
    time.sleep(seconds)
    return client.delete(f"/api/portfolio/{item}/", headers=headers)


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("portfolio-race-var")) as served:
        yield served


def at_once(url: str, *requests: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """The answers to `requests`, each sent from a thread of its own at the same moment."""
    start = threading.Barrier(len(requests))
    answers: dict[int, httpx.Response] = {}

    def fire(index: int, request: Callable[[httpx.Client], httpx.Response]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            start.wait()
            answers[index] = request(client)

    threads = [threading.Thread(target=fire, args=(i, request)) for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answers[i] for i in range(len(requests))]


@pytest.mark.parametrize("race", list(RACES))
def test_a_change_racing_the_items_deletion_answers_what_it_saved(race: str, server: tuple[Server, Settings]) -> None:
    running, settings = server
    plan = RACES[race]
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as setup:
            api = Api(setup, settings)  # type: ignore[arg-type]
            creator = api.creator()
            headers = creator["headers"]
            outcomes: list[tuple[bool, int]] = []
            for round_number in range(ROUNDS):
                # The deletion sent a little later from round to round, across the change's own work.
                late = SPREAD * (round_number % 10) / 10
                item = created(api, creator)["id"]
                image = added_image(api, creator, item)["id"]

                def send_change(client: httpx.Client, item: int = item, image: int = image) -> httpx.Response:
                    return plan.send(client, headers, item, image)

                def send_deletion(client: httpx.Client, item: int = item, late: float = late) -> httpx.Response:
                    return _delete_after(client, late, item, headers)

                change, deletion = at_once(running.url, send_change, send_deletion)
                assert deletion.status_code == 204, deletion.text
                saved = plan.saved(stores, item, image)
                outcomes.append((saved, change.status_code))
                if saved:
                    assert change.status_code == plan.status, (outcomes, change.text)
                    answer: dict[str, Any] = change.json()
                    assert NEW in (answer.get("title"), answer.get("caption")), answer
                else:
                    assert plan.refused(change), (outcomes, change.text)
    finally:
        stores.close()
