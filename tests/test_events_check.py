"""`ugc events check`: the live log decoded by the current code, and what no longer decodes named."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from tests.backends import DATA_KEY, environment, fresh_database
from tests.golden_events import FIXTURES, fixture_path
from tests.servers import run_ugc as ugc
from ugc.ids import ID_KINDS
from ugc.platform.database import Database
from ugc.platform.restore_floors import floor_at, raise_floors
from ugc.platform.store import EventStores
from ugc.wiring import migrate

LOG = json.loads((FIXTURES / "log-v1.json").read_text())


def stored(kept: dict[str, Any], **state: object) -> StoredEvent:
    return StoredEvent(
        originator_id=uuid4(),
        originator_version=int(str(kept["originator_version"])),
        topic=str(kept["topic"]),
        state=json.dumps(kept["state"] | state).encode(),
    )


def test_an_old_log_checks_clean_and_a_broken_event_is_named(backend: str, database_url: str, var_dir: Path) -> None:
    db = Database(database_url)
    migrate(db)
    db.close()
    stores = EventStores(database_url, data_key=DATA_KEY)
    try:
        for name, events in LOG.items():
            stores[name].recorder.insert_events([stored(e) for e in events])
        env = environment(backend, database_url, var_dir)
        everything = ugc(env, "events", "check", "--all")
        assert everything.returncode == 0, everything.stdout + everything.stderr
        total = sum(len(events) for events in LOG.values())
        assert f"{total} events checked (all), 0 do not decode" in everything.stdout
        sampled = ugc(env, "events", "check", "--sample", "3")
        assert sampled.returncode == 0 and "15 events checked (a sample of up to 3 per log)" in sampled.stdout

        cancelled = json.loads(fixture_path("ugc.Order.Cancelled", 2).read_text())
        del cancelled["state"]["reason"]  # as if the class gained `reason` without a new version
        stores.orders.recorder.insert_events([stored(cancelled)])
        broken = ugc(env, "events", "check", "--all")
        assert broken.returncode == 1
        (finding,) = [line for line in broken.stdout.splitlines() if "position" in line]
        position = len(LOG["orders"]) + 1
        assert finding.startswith(f"orders position {position}: ugc.Order.Cancelled of ")
        assert "missing reason" in finding
        assert f"{total + 1} events checked (all), 1 do not decode" in broken.stdout
    finally:
        stores.close()


def test_the_sample_size_must_be_a_positive_number(backend: str, database_url: str, var_dir: Path) -> None:
    env = environment(backend, database_url, var_dir)
    for bad in ("0", "-3", "many"):
        refused = ugc(env, "events", "check", "--sample", bad)
        assert refused.returncode == 2 and "positive whole number" in refused.stderr
    both = ugc(env, "events", "check", "--all", "--sample", "5")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def _append_orders(url: str, events: Sequence[dict[str, object]]) -> None:
    """`events` appended to the orders log by a process of their own (a new recorder: on SQLite the
    first append of each looks for a restore's floor)."""
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        stores.orders.recorder.insert_events([stored(e) for e in events])
    finally:
        stores.close()


def test_a_log_a_restore_moved_on_is_checked_and_counted_by_its_events(backend: str, tmp_path: Path) -> None:
    """A restore moves each log's next position to a floor taken from the clock (~1.8e14 past its
    head: ugc/platform/restore_floors.py), so a log's head is no count of its events. The sample was
    drawn among positions, nearly all of them in the gap, each read as the first event after it: the
    same one, so a sample as large as the log checked a handful of its events; the progress of both
    commands took the head for the number of events. Now they go by the events."""
    events = LOG["orders"]
    count = len(events)
    with fresh_database(backend, tmp_path, migrated=True) as url:
        _append_orders(url, events[: count // 2])
        raise_floors(url, floor_at(datetime.now(UTC)), ID_KINDS)  # `ugc restore`'s step 3
        _append_orders(url, events[count // 2 :])
        env = environment(backend, url, tmp_path)
        sampled = ugc(env, "events", "check", "--sample", str(count))
        assert sampled.returncode == 0, sampled.stdout + sampled.stderr
        assert f"{count} events checked (a sample of up to {count} per log)" in sampled.stdout, sampled.stdout
        assert f"checked {count} of {count} events" in sampled.stderr, sampled.stderr
        everything = ugc(env, "events", "check", "--all")
        assert f"checked {count} of {count} events" in everything.stderr, everything.stderr
        verified = ugc(env, "verify")
        assert f"verify orders: {count}/{count} events (100%)" in verified.stderr, verified.stderr
