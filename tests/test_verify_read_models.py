"""`ugc verify` replays every read model into scratch tables and names each live row that differs (both backends),
and each event the replay cannot apply.

The log is the demo data's (users, services, orders in every status, reviews, chat), projected by
`ugc rebuild`; the tampering is SQL on the read tables or on an event, as a bug or an intruder would
leave them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.catalog import CatalogProjection
from projections.compare import compare_read_models
from projections.orders import OrdersProjection
from projections.replay import NotReplayed
from tests.backends import DATA_KEY, copy_of_database, environment, fresh_database
from tests.servers import run_ugc as ugc
from tests.test_chain_verify import Log
from ugc import cli
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores


@pytest.fixture(scope="module")
def seeded(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The demo data seeded and projected once per backend (two `ugc` runs, 1-2.5 s): its database's URL
    and its directory, which no test touches; each test tampers with a copy of its own (`demo`)."""
    where = tmp_path_factory.mktemp(f"demo-{backend}")
    with fresh_database(backend, where) as url:
        env = environment(backend, url, where)
        for command in (("seed", "--demo"), ("rebuild",)):
            done = ugc(env, *command)
            assert done.returncode == 0, done.stdout + done.stderr
        yield url, where


@pytest.fixture
def demo(backend: str, seeded: tuple[str, Path], tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A copy of the seeded deployment: its directory (the SQLite files with it) and its database."""
    url, where = seeded
    var_dir = tmp_path / "var"
    shutil.copytree(where, var_dir)
    if backend == "sqlite":
        copy = f"sqlite:///{var_dir / 'ugc.sqlite3'}"
        yield copy, environment(backend, copy, var_dir)
        return
    with copy_of_database(url) as copy:
        yield copy, environment(backend, copy, var_dir)


def verify(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = cli.main(["verify", "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_live_read_tables_equal_to_their_replay_verify_clean_and_each_tampered_row_is_named(
    demo: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, env = demo
    status, report = verify(env, monkeypatch, capsys)
    assert (status, report["findings"]) == (0, [])

    db = Database(url)
    try:
        with db.transaction(write=True) as cur:
            picked = cur.execute("SELECT id FROM orders ORDER BY id LIMIT 1").fetchone()
            assert picked is not None
            order = picked["id"]
            cur.execute("UPDATE orders SET status = 'completed' WHERE id = %s AND status <> 'completed'", (order,))
            if cur.rowcount == 0:
                cur.execute("UPDATE orders SET status = 'cancelled' WHERE id = %s", (order,))
            cur.execute("DELETE FROM skills WHERE id = 1")
            cur.execute("INSERT INTO categories (id, name, slug) VALUES (%s, %s, %s)", (9999, "Подделка", "fake"))
    finally:
        db.close()

    status, report = verify(env, monkeypatch, capsys)
    assert status == 1
    found = {
        (f["detail"]["table"], f["detail"]["difference"], json.dumps(f["detail"]["key"]))
        for f in report["findings"]
        if f["kind"] == "read_model"
    }
    assert found == {
        ("orders", "differs", json.dumps({"id": order})),
        ("skills", "missing", json.dumps({"id": 1})),
        ("categories", "extra", json.dumps({"id": 9999})),
    }
    [status_change] = [f for f in report["findings"] if f["detail"]["table"] == "orders"]
    assert set(status_change["detail"]["columns"]) == {"status"}
    assert "orders (id=" in status_change["what"]


def test_an_edited_event_that_no_longer_replays_is_named_and_the_report_still_printed(
    demo: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, env = demo
    stores = EventStores(url, data_key=DATA_KEY)
    try:
        [placed] = stores.orders.recorder.select_notifications(start=1, limit=1, topics=["ugc.Order.Placed"])
    finally:
        stores.close()
    state = json.loads(placed.state)
    del state["buyer"]  # stored so, the event decodes without the field its projections read
    Log(url, env, {}).set_state(placed.id, json.dumps(state).encode())

    status, report = verify(env, monkeypatch, capsys)
    assert (status, report["ok"]) == (1, False) and report["events"] > 0
    where = ("orders", placed.id, str(placed.originator_id), placed.originator_version)
    named = {(f["kind"], f["context"], f["position"], f["stream"], f["version"]) for f in report["findings"]}
    assert {("chain", *where), ("replay", *where)} <= named
    replayed = [f for f in report["findings"] if f["kind"] == "replay"]
    assert {f["detail"]["projection"] for f in replayed} >= {"orders"}
    for finding in replayed:
        assert finding["detail"]["topic"] == "ugc.Order.Placed"
        assert "buyer" in finding["detail"]["error"] and "cannot replay this event" in finding["what"]
    # Passed over, as the live runner would park it: the rest was compared, and the row it made is named.
    differences = {
        (f["detail"]["table"], f["detail"]["difference"]) for f in report["findings"] if f["kind"] == "read_model"
    }
    assert ("orders", "extra") in differences

    done = ugc(env, "verify")  # the real command: each finding, the summary, exit status 1
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verify failed" not in done.stderr
    assert (
        f"replay orders position {placed.id} stream {placed.originator_id} version 1: the orders read model"
        in done.stdout
    )
    assert "finding(s)" in done.stdout.splitlines()[-1]


class OrdersFailingAtCommit(OrdersProjection):
    def before_commit(self, cur: Cursor) -> None:
        raise RuntimeError("no room left on the device")


def test_a_replay_failing_with_no_event_to_blame_stops_its_read_model_which_is_left_out(
    demo: tuple[str, dict[str, str]],
) -> None:
    url, _ = demo
    db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
    told: list[NotReplayed] = []
    try:
        assert compare_read_models(db, stores, [OrdersFailingAtCommit(), CatalogProjection()], failed=told.append) == []
    finally:
        stores.close()
        db.close()
    [failure] = told
    assert (failure.projection, failure.application, failure.event, failure.after) == ("orders", "orders", None, 0)
    assert failure.describe() == (
        "the orders read model's replay failed in a batch of orders after position 0: "
        "RuntimeError: no room left on the device; its replay stopped there"
    )
