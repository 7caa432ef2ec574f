"""A notification goes out on its socket once what it tells of can be read.

The notifications read model and the orders read model may be applied by different processes (each
projection has its own lease): here `ugc project --only` every projection but `orders`, and the
orders one started later. A creator whose socket said `new_order` and who opened that order at once
was answered 404 while the orders read model lagged (1 to 10 in 40 with two workers on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from projections.registry import all_projections
from projections.runner import JOBS_LEASE
from tests.backends import environment, fresh_database
from tests.conftest import Api
from tests.orders_world import a_deal
from tests.servers import end_process, free_port, start_projector, start_server
from ugc.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TIMEOUT = 20  # UGC_READ_YOUR_WRITES_TIMEOUT: the order's command and its push wait for the orders read model


@pytest.fixture
def split(backend: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], httpx.Client, Settings]]:
    """A server whose read models are all kept by one projector but the orders one, which none keeps yet."""
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database(backend, tmp_path))
        port = free_port()
        env = environment(backend, url, tmp_path) | {
            "UGC_PROJECTIONS": "external",
            "UGC_READ_YOUR_WRITES_TIMEOUT": str(TIMEOUT),
            "UGC_PUBLIC_URL": f"http://127.0.0.1:{port}",  # the projector writes the mails
        }
        server = stack.enter_context(start_server(env, port, log_dir=tmp_path))
        settings = Settings.from_env(env)
        but_orders = [p.name for p in all_projections(settings) if p.name != "orders"] + [JOBS_LEASE]
        stack.callback(end_process, start_projector(env, tmp_path / "project-all-but-orders.log", but_orders))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=2 * TIMEOUT))
        yield env, client, settings


def test_a_new_order_is_told_of_once_the_creator_can_open_it(
    split: tuple[dict[str, str], httpx.Client, Settings], tmp_path: Path
) -> None:
    env, client, settings = split
    deal = a_deal(Api(client, settings))  # type: ignore[arg-type]
    body = {"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=7)).isoformat()}
    placed: list[httpx.Response] = []
    orders_projector: list[subprocess.Popen[bytes]] = []
    opened: list[int] = []

    async def scenario() -> None:
        socket_url = f"{str(client.base_url).replace('http', 'ws', 1)}/ws/notifications/?token={deal.creator['access']}"
        async with connect(socket_url) as alerts:
            placing = threading.Thread(
                target=lambda: placed.append(client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=body))
            )
            placing.start()
            try:
                # The notification is stored by now, the order is not readable: nothing is said yet...
                raw = await asyncio.wait_for(alerts.recv(), 3)
            except TimeoutError:
                # ...until the orders read model has the order (its projector starts only now).
                orders_projector.append(start_projector(env, tmp_path / "project-orders.log", ["orders"]))
                raw = await asyncio.wait_for(alerts.recv(), TIMEOUT)
            told: dict[str, Any] = json.loads(raw)
            assert told["type"] == "new_order", told
            order = client.get(f"/api/v1/orders/{told['data']['order_id']}/", headers=deal.creator["headers"])
            opened.append(order.status_code)
            await asyncio.to_thread(placing.join, 2 * TIMEOUT)

    try:
        asyncio.run(scenario())
    finally:
        for process in orders_projector:
            end_process(process)
    assert opened == [200]
    assert [response.status_code for response in placed] == [201]
