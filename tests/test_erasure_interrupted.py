"""`ugc users erase` killed part-way, against a real server: what it left undone is named by `ugc verify`
until erasing again finishes it.

The erasure appends `User.Erased`, then withdraws the person's services, portfolio and skills and
cancels their open orders (step 4). Killed in between (held at the catalog's append, the lock every
append takes, then SIGKILL), it left the erased creator's service listed and open to new orders, and
their order pending, and `ugc verify` said nothing: the journal line and the destroyed keys agree, so
the erasure looked done.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest

from tests.backends import environment
from tests.conftest import Api
from tests.servers import Server, run_ugc, served_fresh, server_environment
from tests.test_erasure_races import catalog_held
from ugc.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

UNAVAILABLE = {"service_id": ["Сервис недоступен для заказа."]}


@pytest.fixture
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Settings]]:
    with served_fresh(backend, tmp_path_factory.mktemp("erasure-killed-var")) as served:
        yield served


def _kill_erasure_after_its_user_erased(env: dict[str, str], client: httpx.Client, person: dict[str, str]) -> None:
    """Start `ugc users erase` on `person` and SIGKILL it once the server refuses their token (User.Erased
    stored and announced), while the catalog's lock held by the caller keeps it from withdrawing anything."""
    erasing = subprocess.Popen(
        [sys.executable, "-m", "ugc.cli", "users", "erase", person["username"], "--yes"],
        env=server_environment(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while client.get("/api/v1/users/me/", headers=person["headers"]).status_code != 401:
            assert erasing.poll() is None, "the erasure ended before its User.Erased was heard"
            time.sleep(0.05)
    finally:
        erasing.send_signal(signal.SIGKILL)
        erasing.wait()


def test_an_erasure_killed_before_it_ended_the_persons_dealings_is_named_by_verify_until_finished(
    backend: str, server: tuple[Server, Settings]
) -> None:
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        api = Api(client, settings)  # type: ignore[arg-type]
        creator = api.creator()
        service = api.service(creator)
        buyer = api.verified_user()
        body = {"service_id": service["id"], "requirements": "Обзор", "delivery_date": str(date.today() + timedelta(9))}
        placed = client.post("/api/v1/orders/", headers=buyer["headers"], json=body)
        assert placed.status_code == 201, placed.text
        order = placed.json()["id"]
        with catalog_held(settings):
            _kill_erasure_after_its_user_erased(env, client, creator)
        assert client.get(f"/api/v1/orders/{order}/", headers=buyer["headers"]).json()["status"] == "pending"

        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 1, verified.stdout + verified.stderr
        (finding,) = json.loads(verified.stdout)["findings"]
        assert finding["kind"] == "erasure", finding
        assert finding["what"].startswith(f"user {creator['id']} ({creator['username']}), erased by line 1"), finding
        assert f"1 service(s) offered: {service['id']}" in finding["what"], finding
        assert f"1 order(s) open: {order}" in finding["what"], finding
        assert f"`ugc users erase {creator['username']} --yes` finishes it" in finding["what"], finding

        finished = run_ugc(env, "users", "erase", creator["username"], "--yes")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert "1 service(s) withdrawn" in finished.stdout and "1 order(s) cancelled" in finished.stdout
        listed = client.get("/api/v1/services/", params={"creator": creator["profile"]["id"]}).json()
        assert listed["count"] == 0
        assert client.get(f"/api/v1/orders/{order}/", headers=buyer["headers"]).json()["status"] == "cancelled"
        verified = run_ugc(env, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_service_of_a_creator_whose_erasure_was_killed_before_withdrawing_it_takes_no_order(
    backend: str, server: tuple[Server, Settings]
) -> None:
    running, settings = server
    env = environment(backend, settings.database_url, settings.var_dir)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        api = Api(client, settings)  # type: ignore[arg-type]
        creator = api.creator()
        service = api.service(creator)
        buyer = api.verified_user()
        with catalog_held(settings):
            _kill_erasure_after_its_user_erased(env, client, creator)
        body = {"service_id": service["id"], "requirements": "Обзор", "delivery_date": str(date.today() + timedelta(9))}
        placed = client.post("/api/v1/orders/", headers=buyer["headers"], json=body)
        assert (placed.status_code, placed.json()["fields"]) == (422, UNAVAILABLE), placed.text
        assert client.get("/api/v1/orders/", headers=buyer["headers"]).json()["count"] == 0
