"""`ugc rebuild orders notifications` under load: a real server answers commands and list reads all
the while. No read sees a shorter list or loses an order it showed (the old tables serve until one
switch), no command answers 503 (the live projections keep applying), and afterwards the tables
equal a fresh replay of the log."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from projections.compare import compare_read_models
from projections.registry import all_projections
from tests.backends import BACKENDS, DATA_KEY, environment, fresh_database, postgres_available
from tests.conftest import Api
from tests.orders_world import Deal, a_deal
from tests.servers import Server, start_server
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import EventStores

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ORDERS_BEFORE = 120  # each placed and accepted: enough log for each rebuild to take a while
REBUILDS = 3


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    if request.param == "postgres" and not postgres_available():
        pytest.skip("UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
    with fresh_database(request.param, tmp_path) as url:
        env = environment(request.param, url, tmp_path)
        with start_server(env, log_dir=tmp_path / "logs") as server:
            yield server, env


def test_a_rebuild_under_load_never_shows_partial_tables_nor_fails_a_command(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, env = served
    settings = Settings.from_env(env | {"UGC_PUBLIC_URL": server.url})
    with httpx.Client(base_url=server.url, timeout=60) as client:
        api = Api(client, settings)  # type: ignore[arg-type]
        deal = a_deal(api)
        placed = [place_and_accept(client, deal) for _ in range(ORDERS_BEFORE)]

        failures: list[str] = []
        stop = threading.Event()
        reads = [0]

        def commands() -> None:
            while not stop.is_set():
                try:
                    placed.append(place_and_accept(client, deal))
                except AssertionError as error:
                    failures.append(str(error))

        def reader() -> None:
            """The buyer's order count and the creator's notifications never go down; a shown order stays."""
            seen_orders, seen_notifications = 0, 0
            with httpx.Client(base_url=server.url, timeout=60) as own:
                while not stop.is_set():
                    known = len(placed)
                    orders = own.get("/api/v1/orders/", headers=deal.buyer["headers"])
                    notes = own.get("/api/v1/notifications/", headers=deal.creator["headers"])
                    one = own.get(f"/api/v1/orders/{placed[known - 1]}/", headers=deal.buyer["headers"])
                    for response in (orders, notes, one):
                        if response.status_code != 200:
                            failures.append(f"{response.request.url}: {response.status_code} {response.text[:200]}")
                    if orders.status_code == notes.status_code == 200:
                        count, notified = orders.json()["count"], notes.json()["count"]
                        if count < max(seen_orders, known) or notified < seen_notifications:
                            failures.append(
                                f"orders {seen_orders} -> {count} (placed {known}), "
                                f"notifications {seen_notifications} -> {notified}"
                            )
                        seen_orders, seen_notifications = count, notified
                    reads[0] += 1

        threads = [threading.Thread(target=commands), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        during: list[tuple[int, int]] = []  # reads and commands answered while each rebuild ran
        rebuilt = []
        try:
            for _ in range(REBUILDS):
                reads_before, commands_before = reads[0], len(placed)
                rebuilt.append(rebuild(env))
                during.append((reads[0] - reads_before, len(placed) - commands_before))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        for done in rebuilt:
            assert done.returncode == 0, done.stderr
            assert "rebuilt orders (switched at orders " in done.stdout and "rebuilt notifications" in done.stdout
        assert not failures, failures[:10]
        assert all(reads_during > 0 and commands_during > 0 for reads_during, commands_during in during), during

    db, stores = Database(env["UGC_DATABASE_URL"]), EventStores(env["UGC_DATABASE_URL"], data_key=DATA_KEY)
    try:
        assert compare_read_models(db, stores, all_projections(settings)) == []
        with db.read() as cur:
            row = cur.execute("SELECT COUNT(*) AS n FROM orders").fetchone()
        assert row is not None and row["n"] == len(placed)
    finally:
        stores.close()
        db.close()


def place_and_accept(client: httpx.Client, deal: Deal) -> int:
    """A placed order that its creator accepted: both answers must be the command's own (no 503)."""
    body = {
        "service_id": deal.service["id"],
        "requirements": "Обзор",
        "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
    }
    response = client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=body | {"selected_option_ids": []})
    assert response.status_code == 201, f"place: {response.status_code} {response.text[:200]}"
    order: int = response.json()["id"]
    response = client.post(f"/api/v1/orders/{order}/accept/", headers=deal.creator["headers"])
    assert response.status_code == 200, f"accept: {response.status_code} {response.text[:200]}"
    return order


def rebuild(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ugc.cli", "rebuild", "orders", "notifications"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    done.stdout += f"\n(took {time.monotonic() - started:.1f} s)"
    return done
