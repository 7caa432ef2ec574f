"""`ugc seed --demo` stopped anywhere (Ctrl-C, a crash) and run again ends with exactly the data of
a run that was never stopped: the README's "a second run adds nothing" holds after any interruption."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands.creators import CreatorCommands
from commands.messaging import MessagingCommands
from commands.orders import OrderCommands
from commands.services import ServiceCommands
from tests.backends import DATA_KEY, environment, fresh_database
from ugc import cli
from ugc.platform.store import EventStores

# (handler class, method, which of its calls the run is stopped at)
STOPS = [
    (CreatorCommands, "create_profile", 2),
    (ServiceCommands, "offer", 2),
    (OrderCommands, "place", 3),
    (OrderCommands, "accept", 2),
    (OrderCommands, "deliver", 2),
    (OrderCommands, "request_revision", 1),
    (OrderCommands, "approve", 1),
    (OrderCommands, "review", 2),
    (OrderCommands, "cancel", 1),
    (MessagingCommands, "send_message", 2),
]


def seeded(backend: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with fresh_database(backend, directory, migrated=True) as url:
        for name, value in environment(backend, url, directory).items():
            monkeypatch.setenv(name, value)
        yield url


def events_by_topic(url: str) -> Counter[str]:
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        return Counter(
            f"{name}: {notification.topic}"
            for name, app in stores.applications.items()
            for notification in app.recorder.select_notifications(start=1, limit=1_000_000)
        )
    finally:
        stores.close()


@pytest.fixture(scope="module")
def clean(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Counter[str]:
    """The events of a demo seed that ran to its end, by log and topic."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for url in seeded(backend, tmp_path_factory.mktemp("clean"), monkeypatch):
            assert cli.main(["seed", "--demo"]) == 0
            return events_by_topic(url)
    raise AssertionError("no database")


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(("handler", "method", "call"), STOPS, ids=[f"{m}{n}" for _, m, n in STOPS])
def test_a_demo_seed_stopped_anywhere_is_finished_by_the_next_run(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean: Counter[str],
    handler: type,
    method: str,
    call: int,
    when: str,
) -> None:
    real = getattr(handler, method)
    calls = 0

    def stopped(self: object, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call and when == "before":
            raise KeyboardInterrupt
        done = real(self, *args, **kwargs)
        if calls == call:
            raise KeyboardInterrupt
        return done

    for url in seeded(backend, tmp_path, monkeypatch):
        monkeypatch.setattr(handler, method, stopped)
        assert cli.main(["seed", "--demo"]) == 130
        assert calls == call
        monkeypatch.setattr(handler, method, real)
        assert cli.main(["seed", "--demo"]) == 0
        assert events_by_topic(url) == clean
