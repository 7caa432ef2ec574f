"""`ugc events check`: the live log decoded by the current code, and what no longer decodes named."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from tests.backends import DATA_KEY, environment
from tests.golden_events import FIXTURES, fixture_path
from tests.test_cli import ugc
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate

LOG = json.loads((FIXTURES / "log-v1.json").read_text())


def stored(kept: dict[str, object], **state: object) -> StoredEvent:
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
