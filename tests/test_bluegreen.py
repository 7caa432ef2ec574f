"""Blue/green rebuilds and the read-model compare, in process beside a serving app whose own runner
keeps following the log: a compare finds nothing on untouched tables and names each edited row; a
rebuild puts the replayed tables in place; an interrupted or crashed one leaves the live tables as
they were and its scratch set is gone or swept; a projection of a new version is rebuilt at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from commands.reference import load_reference_data
from projections.bluegreen import (
    Interrupted,
    RebuildRunning,
    VersionUpgrade,
    live_positions,
    rebuild,
    rebuild_outdated,
)
from projections.catalog import CatalogProjection
from projections.compare import ReadModelDifference, compare_read_models
from projections.leasing import LeaseKeeper
from projections.notifications import NotificationsProjection
from projections.orders import OrdersProjection
from projections.registry import all_projections
from projections.replay import Replay
from projections.runner import ProjectionRunner
from projections.scratch import PREFIX, ScratchSet
from readmodels import versions
from readmodels.notifications import read_state
from readmodels.waiting import Progress, wait_for
from tests.backends import DATA_KEY, environment, fresh_database
from tests.conftest import Api
from tests.orders_world import a_deal, order_in
from ugc.clock import SystemClock
from ugc.config import Settings, sqlite_path
from ugc.platform import leases
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores
from ugc.wiring import leader_sweeper, migrate


@pytest.fixture(scope="module")
def world(app_client: Any, settings: Settings) -> dict[str, int]:
    """Orders in every status, reviews, deliveries and notifications, as the live runner made them."""
    api = Api(app_client, settings)
    deal = a_deal(api)
    orders = {status: order_in(api, deal, status) for status in ("pending", "in_progress", "delivered", "completed")}
    orders["cancelled"] = order_in(api, deal, "cancelled")
    response = app_client.post(
        f"/api/v1/orders/{orders['completed']}/reviews/",
        headers=deal.buyer["headers"],
        json={"content": "Да", "rating": 5},
    )
    assert response.status_code == 201, response.text
    return orders


@pytest.fixture
def parts(app_client: Any) -> tuple[Database, EventStores]:
    services = app_client.app.state.services
    return services.db, services.orders.stores


def read_models(settings: Settings) -> list[Any]:
    return [p for p in all_projections(settings) if p.read_model]


def scratch_sets(db: Database) -> list[str]:
    if db.dialect == "postgresql":
        with db.read() as cur:
            rows = cur.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (PREFIX,)).fetchall()
        return [row["nspname"] for row in rows]
    live = sqlite_path(db.url)
    return sorted(
        p.name
        for p in live.parent.glob(f"{live.name}.{PREFIX}*")
        if p.name[-1].isalnum() and "-" not in p.name and not p.name.endswith(".lock")
    )


def rows(db: Database, table: str) -> list[dict[str, Any]]:
    with db.read() as cur:
        return sorted(cur.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def edit(db: Database, orders: dict[str, int]) -> None:
    """A status changed, a delivery deleted and a review that no event made, straight in the tables."""
    with db.transaction(write=True) as cur:
        cur.execute("UPDATE orders SET status = %s WHERE id = %s", ("cancelled", orders["delivered"]))
        cur.execute("DELETE FROM deliveries WHERE order_id = %s", (orders["delivered"],))
        cur.execute(
            "INSERT INTO reviews (id, order_id, creator_profile_id, reviewer_id, reviewer_username, service_id, "
            "service_title, rating, content, created_at) SELECT 990001, id, creator_profile_id, buyer_id, 'nobody', "
            "service_id, 'forged', 1, 'forged', created_at FROM orders WHERE id = %s",
            (orders["pending"],),
        )


def test_compare_finds_nothing_on_untouched_tables(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    db, stores = parts
    seen: list[tuple[int, int]] = []
    assert compare_read_models(db, stores, read_models(settings), lambda done, total: seen.append((done, total))) == []
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert scratch_sets(db) == []


def test_compare_names_each_edited_row_and_a_rebuild_restores_them(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    db, stores = parts
    edit(db, world)
    found = compare_read_models(db, stores, read_models(settings))
    by_kind = {(d.table, d.kind): d for d in found}
    assert set(by_kind) == {("orders", "differs"), ("deliveries", "missing"), ("reviews", "extra")}, found
    status = by_kind[("orders", "differs")]
    assert status.projection == "orders" and status.key == {"id": world["delivered"]}
    assert [(c.column, c.live, c.replayed) for c in status.columns] == [("status", "cancelled", "delivered")]
    assert by_kind[("deliveries", "missing")].row["order_id"] == world["delivered"]
    assert by_kind[("reviews", "extra")].key == {"id": 990001}
    assert all(isinstance(d, ReadModelDifference) and d.describe() for d in found)

    positions = rebuild(db, stores, [OrdersProjection()])
    assert positions[("orders", "orders")] > 0
    assert compare_read_models(db, stores, read_models(settings)) == []
    assert scratch_sets(db) == []


def test_counts_an_older_process_left_wrong_are_named_and_a_blue_green_rebuild_counts_the_rows_again(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    """Rows stored by a process that does not count them (an older version in a rolling deploy)
    leave a user's counts short: `ugc verify`'s comparison names the row, and the rebuild's new
    `notification_counts` counts what its new `notifications` hold."""
    db, stores = parts
    with db.transaction(write=True) as cur:
        picked = cur.execute("SELECT user_id FROM notification_counts ORDER BY user_id LIMIT 1").fetchone()
        assert picked is not None
        user = picked["user_id"]
        cur.execute("UPDATE notification_counts SET total = total - 1, unread = 0 WHERE user_id = %s", (user,))
    found = compare_read_models(db, stores, read_models(settings))
    assert [(d.table, d.kind, d.key) for d in found] == [("notification_counts", "differs", {"user_id": user})]

    rebuild(db, stores, [NotificationsProjection()])
    assert compare_read_models(db, stores, read_models(settings)) == []
    with db.read() as cur:
        kept = cur.execute("SELECT user_id, total, unread FROM notification_counts ORDER BY user_id").fetchall()
        counted = cur.execute(
            f"SELECT user_id, COUNT(*) AS total, SUM(CASE WHEN {read_state('n')} THEN 0 ELSE 1 END) AS unread "
            "FROM notifications n GROUP BY user_id ORDER BY user_id"
        ).fetchall()
    assert [tuple(int(v) for v in row.values()) for row in kept] == [
        tuple(int(v) for v in row.values()) for row in counted
    ]
    assert kept


def test_a_read_state_edited_in_either_of_its_two_places_is_named(
    world: dict[str, int], app_client: Any, parts: tuple[Database, EventStores], settings: Settings
) -> None:
    """A notification reads as read by its own mark (its row's `is_read`) or by its user's mark of all
    (`notification_read_marks`), which leaves the rows as they are: a mark lost, a row marked that
    nobody marked, a count moved, each is named; a rebuild mends them."""
    db, stores = parts
    services = app_client.app.state.services
    with db.read() as cur:
        picked = cur.execute("SELECT user_id FROM notification_counts ORDER BY user_id LIMIT 1").fetchone()
        assert picked is not None
        user = picked["user_id"]
    wait_for(db, services.progress, services.notifications.mark_all_read(user), 5.0)
    with db.transaction(write=True) as cur:
        mark = cur.execute("SELECT source FROM notification_read_marks WHERE user_id = %s", (user,)).fetchone()
        assert mark is not None
        cur.execute("DELETE FROM notification_read_marks WHERE user_id = %s AND source = %s", (user, mark["source"]))
        picked = cur.execute(
            "SELECT id FROM notifications WHERE user_id <> %s AND is_read = %s ORDER BY id LIMIT 1", (user, False)
        ).fetchone()
        assert picked is not None
        other = picked["id"]
        cur.execute("UPDATE notifications SET is_read = %s WHERE id = %s", (True, other))
        cur.execute("UPDATE notification_counts SET unread = unread + 1 WHERE user_id = %s", (user,))
    found = compare_read_models(db, stores, read_models(settings))
    assert sorted((d.table, d.kind, tuple(d.key.values())) for d in found) == [
        ("notification_counts", "differs", (user,)),
        ("notification_read_marks", "missing", (user, mark["source"])),
        ("notifications", "differs", (other,)),
    ]
    rebuild(db, stores, [NotificationsProjection()])
    assert compare_read_models(db, stores, read_models(settings)) == []


def indexes(db: Database, tables: tuple[str, ...]) -> set[tuple[str, str]]:
    """(table, index definition) of the live `tables`."""
    marks = ", ".join(["%s"] * len(tables))
    with db.read() as cur:
        if db.dialect == "postgresql":
            rows = cur.execute(
                f"SELECT tablename AS t, indexdef AS d FROM pg_indexes WHERE schemaname = current_schema() "
                f"AND tablename IN ({marks})",
                tables,
            ).fetchall()
        else:
            rows = cur.execute(
                f"SELECT tbl_name AS t, COALESCE(sql, name) AS d FROM sqlite_master WHERE type = 'index' "
                f"AND tbl_name IN ({marks})",
                tables,
            ).fetchall()
    return {(row["t"], row["d"]) for row in rows}


def test_a_rebuild_whose_plain_indexes_are_made_after_the_replay_switches_in_every_index(
    world: dict[str, int], parts: tuple[Database, EventStores]
) -> None:
    db, stores = parts
    before = indexes(db, OrdersProjection.tables)
    assert OrdersProjection.indexed_after_replay and any("orders_buyer " in definition for _, definition in before)
    rebuild(db, stores, [OrdersProjection()])
    assert indexes(db, OrdersProjection.tables) == before
    assert scratch_sets(db) == []


def test_more_differences_than_the_limit_are_counted(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    db, stores = parts
    with db.transaction(write=True) as cur:
        cur.execute("UPDATE orders SET requirements = %s", ("forged",))
    found = compare_read_models(db, stores, [OrdersProjection()], limit=2)
    assert [d.kind for d in found] == ["differs", "differs", "more"]
    assert found[-1].count == len(world) - 2 and found[-1].detail == "differs"
    rebuild(db, stores, [OrdersProjection()])
    assert compare_read_models(db, stores, [OrdersProjection()]) == []


def test_an_interrupted_rebuild_leaves_the_live_tables_untouched(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    db, stores = parts
    edit(db, world)  # so that a switch, had it happened, would show
    before = {table: rows(db, table) for table in OrdersProjection.tables}
    stop = threading.Event()
    with pytest.raises(Interrupted):
        rebuild(db, stores, [OrdersProjection()], advanced=lambda _: stop.set(), stop=stop, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        rebuild(db, stores, [OrdersProjection()], advanced=_ctrl_c, batch_size=2)
    assert {table: rows(db, table) for table in OrdersProjection.tables} == before
    assert scratch_sets(db) == []
    rebuild(db, stores, [OrdersProjection()])
    assert compare_read_models(db, stores, [OrdersProjection()]) == []


def _ctrl_c(_: int) -> None:
    raise KeyboardInterrupt


CRASHING = """
import os, signal, sys
from projections.bluegreen import rebuild
from projections.orders import OrdersProjection
from ugc.platform import leases
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import EventStores
from ugc.wiring import leader_sweeper, migrate

db, stores = Database(sys.argv[1]), EventStores(sys.argv[1])  # the orders log holds nothing personal
rebuild(db, stores, [OrdersProjection()], advanced=lambda _: os.kill(os.getpid(), signal.SIGKILL), batch_size=2)
"""


def test_a_crashed_rebuild_leaves_the_live_tables_and_its_scratch_set_is_swept(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    db, stores = parts
    before = {table: rows(db, table) for table in OrdersProjection.tables}
    env = os.environ | environment("postgres" if db.dialect == "postgresql" else "sqlite", db.url, settings.var_dir)
    crashed = subprocess.run([sys.executable, "-c", CRASHING, db.url], env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    left = scratch_sets(db)
    assert len(left) == 1, left
    assert {table: rows(db, table) for table in OrdersProjection.tables} == before
    # PostgreSQL frees the dead process's locks (one connection each) once its backends see their
    # connections closed: until then a rebuild is refused, or leaves the set to a later sweep.
    deadline = time.monotonic() + 10
    while True:
        try:
            rebuild(db, stores, [OrdersProjection()])
        except RebuildRunning:
            pass
        if not scratch_sets(db):
            break
        assert time.monotonic() < deadline, "the crashed rebuild's scratch set was never swept"
        time.sleep(0.1)


def test_a_crashed_rebuilds_scratch_set_is_swept_by_the_leader_without_another_rebuild(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    """Only the next rebuild, compare or version upgrade used to sweep it: until one ran, a copy of
    the read tables stayed beside the live ones for good."""
    db, _ = parts
    env = os.environ | environment("postgres" if db.dialect == "postgresql" else "sqlite", db.url, settings.var_dir)
    crashed = subprocess.run([sys.executable, "-c", CRASHING, db.url], env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(scratch_sets(db)) == 1
    deadline = time.monotonic() + 10  # PostgreSQL frees the dead process's lock once it sees it gone
    while scratch_sets(db):
        assert time.monotonic() < deadline, "the crashed rebuild's scratch set was never swept"
        leader_sweeper(settings, db, SystemClock()).run_once()  # a new one sweeps at once
        time.sleep(0.1)


class OrdersV2(OrdersProjection):
    version: ClassVar[int] = 2


def test_a_projection_of_a_new_version_is_rebuilt_blue_green_at_start(
    world: dict[str, int], parts: tuple[Database, EventStores], settings: Settings
) -> None:
    db, stores = parts
    assert versions.stored(db)["orders"] == 1  # adopted at the app's start
    edit(db, world)
    assert rebuild_outdated(db, stores, lambda: [OrdersProjection()], threading.Event()) == []
    assert compare_read_models(db, stores, [OrdersProjection()]) != []
    assert rebuild_outdated(db, stores, lambda: [OrdersV2()], threading.Event()) == ["orders"]
    assert versions.stored(db)["orders"] == 2
    assert compare_read_models(db, stores, [OrdersProjection()]) == []
    assert rebuild_outdated(db, stores, lambda: [OrdersV2()], threading.Event()) == []
    rebuild(db, stores, [OrdersProjection()])  # back to the declared version for the other tests
    assert versions.stored(db)["orders"] == 1


def test_a_rebuild_for_another_version_switches_only_while_its_process_holds_the_leases(
    world: dict[str, int], parts: tuple[Database, EventStores]
) -> None:
    """A process whose lease of a read model was taken over (by a member of a newer version, or after
    it froze) must not switch that read model's tables to its version: its switch is fenced by the
    lease, and the live tables and their stored version stay as they were."""
    db, stores = parts
    live = leases.states(db)["orders"]  # the serving app's runner holds it
    assert live.holder is not None
    edit(db, world)
    with pytest.raises(leases.LeaseLost):
        rebuild_outdated(
            db, stores, lambda: [OrdersV2()], threading.Event(), fence=fenced_by("test/taken-over", live.token)
        )
    assert versions.stored(db)["orders"] == 1
    assert compare_read_models(db, stores, [OrdersProjection()]) != []  # the edit is still there: no switch
    fence = fenced_by(live.holder, live.token)
    assert rebuild_outdated(db, stores, lambda: [OrdersV2()], threading.Event(), fence=fence) == ["orders"]
    assert versions.stored(db)["orders"] == 2
    assert compare_read_models(db, stores, [OrdersProjection()]) == []
    rebuild(db, stores, [OrdersProjection()])  # back to the declared version for the other tests
    assert versions.stored(db)["orders"] == 1


def fenced_by(holder: str, token: int) -> Callable[[Cursor], None]:
    return lambda cur: leases.fence(cur, holder, {"orders": token})


def test_a_runner_rebuilds_for_its_version_each_read_model_it_takes_over(backend: str, tmp_path: Path) -> None:
    """A rolling deploy: a process of version 2 takes the read model over and rebuilds it for version 2;
    then (a rollback) only a process of version 1 is left, takes it over, and rebuilds it for version 1.
    Looking again under the same lease rebuilds nothing (`VersionUpgrade`, run by hand here)."""
    with fresh_database(backend, tmp_path) as url:
        db, stores = Database(url), EventStores(url, data_key=DATA_KEY)
        try:
            migrate(db)
            ProjectionRunner(db, stores, [OrdersProjection()], Progress()).register()  # stores version 1
            for projection in (OrdersV2, OrdersProjection):
                keeper = LeaseKeeper(
                    db, ["orders"], versions={"orders": projection.version}, holder=f"test/v{projection.version}"
                )
                keeper.tick()  # the other member has left: the lease is free
                assert "orders" in keeper.held()

                def fresh(projection: type[OrdersProjection] = projection) -> list[OrdersProjection]:
                    return [projection()]

                def kept(keeper: LeaseKeeper = keeper) -> LeaseKeeper:
                    return keeper

                upgrade = VersionUpgrade(db, stores, fresh, kept)
                assert upgrade._rebuild_held() == ["orders"]
                assert versions.stored(db)["orders"] == projection.version
                assert upgrade._rebuild_held() == []
                keeper.stop()
        finally:
            stores.close()
            db.close()


def test_side_effects_are_never_replayed(parts: tuple[Database, EventStores], settings: Settings) -> None:
    db, stores = parts
    mail = [p for p in all_projections(settings) if not p.read_model]
    assert mail
    with ScratchSet.made(db, ()) as scratch, pytest.raises(ValueError, match="never replayed"):
        Replay(scratch, stores, mail)
    env = os.environ | environment("postgres" if db.dialect == "postgresql" else "sqlite", db.url, settings.var_dir)
    done = subprocess.run(
        [sys.executable, "-m", "ugc.cli", "rebuild", mail[0].name], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "never replayed" in done.stderr, done.stderr


@pytest.fixture(autouse=True)
def _no_scratch_left(parts: tuple[Database, EventStores]) -> Iterator[None]:
    yield
    assert scratch_sets(parts[0]) == []


def test_with_no_live_runner_a_rebuild_goes_to_the_head_and_moves_the_positions(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        db, stores = Database(url), None
        try:
            migrate(db)
            stores = EventStores(url, data_key=DATA_KEY)
            load_reference_data(stores, db, SystemClock(), "operator:test")
            catalog = CatalogProjection()
            ProjectionRunner(db, stores, [catalog], Progress()).register()
            assert live_positions(db, [catalog]) == {("catalog", "catalog"): 0}
            head = stores.heads()["catalog"]
            assert rebuild(db, stores, [CatalogProjection()]) == {("catalog", "catalog"): head}
            assert live_positions(db, [catalog]) == {("catalog", "catalog"): head}
            assert rows(db, "categories") and rows(db, "skills")
            assert compare_read_models(db, stores, [CatalogProjection()]) == []
        finally:
            if stores is not None:
                stores.close()
            db.close()


def test_a_switch_gives_way_to_a_reader_holding_a_table_and_tries_again(
    world: dict[str, int], parts: tuple[Database, EventStores]
) -> None:
    """PostgreSQL: a reader's transaction that holds `orders` (and might wait for another table the
    switch locked) is never made to wait past the switch's bounded lock wait, nor killed by it."""
    db, stores = parts
    if db.dialect != "postgresql":
        pytest.skip("SQLite readers never wait for a writer (WAL)")
    import psycopg

    with psycopg.connect(db.url) as reader:
        reader.execute("SELECT count(*) FROM orders").fetchone()  # AccessShare held until the transaction ends
        held = threading.Timer(1.0, reader.rollback)
        held.start()
        started = time.monotonic()
        rebuild(db, stores, [OrdersProjection()])
        held.join()
    assert time.monotonic() - started >= 1.0  # it waited for the reader, in attempts, instead of failing
    assert compare_read_models(db, stores, [OrdersProjection()]) == []
