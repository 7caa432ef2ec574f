"""Time in the lifecycle: auto-completion after the review period, and lateness (a moved clock)."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from pathlib import Path

from commands.scheduler import AutoCompleter
from readmodels.orders import due_for_auto_completion
from readmodels.waiting import wait_for
from tests.backends import environment
from tests.conftest import Api, new_client
from tests.orders_world import a_deal, act, order_in, place
from tests.servers import run_ugc
from ugc.clock import MovableClock
from ugc.config import Settings


def test_a_delivered_order_completes_itself_exactly_once(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = order_in(api, deal, "delivered")
        other = order_in(api, deal, "delivered")
        act(api, deal.buyer, other, "approve")
        services = client.app.state.services  # type: ignore[attr-defined]
        schedulers = [
            AutoCompleter(services.orders, clock, lambda before: due_for_auto_completion(services.db, before))
            for _ in range(2)
        ]
        clock.advance(timedelta(days=settings.auto_complete_days) - timedelta(minutes=1))
        assert [s.run_once() for s in schedulers] == [0, 0], "not due yet"
        clock.advance(timedelta(minutes=2))
        done: list[int] = []
        start = threading.Barrier(len(schedulers))

        def run(scheduler: AutoCompleter) -> None:
            start.wait()
            done.append(scheduler.run_once())

        threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(done) == [0, 1]
        # Access tokens expired while the clock moved: sign in again.
        buyer = api.login(deal.buyer["username"])
        headers = {"Authorization": f"Bearer {buyer['access']}"}
        response = client.get(f"/api/v1/orders/{order}/history/", headers=headers)
        assert response.status_code == 200, response.text
        history = response.json()["results"]
        assert [e["type"] for e in history].count("OrderAutoCompleted") == 1
        assert history[-1]["actor"] == {"kind": "system", "id": None, "username": "scheduler"}
        assert history[-1]["request_id"] is None
        # The scheduler's command is not an HTTP request: wait for the read models as a request would.
        head = services.orders.app.recorder.max_notification_id()
        services.progress.nudge()
        wait_for(services.db, services.progress, {"orders": head}, 5.0)
        current = client.get(f"/api/v1/orders/{order}/", headers=headers).json()
        assert current["status"] == "completed" and current["completed_at"] is not None
        profile = client.get(f"/api/v1/creators/{deal.creator['profile']['id']}/").json()
        assert profile["completed_orders"] == 2
        # Nobody acted, so both parties are told; each may mark only their own notification.
        creator = {"Authorization": f"Bearer {api.login(deal.creator['username'])['access']}"}
        told = {}
        for who, party in (("buyer", headers), ("creator", creator)):
            (completed,) = [
                n
                for n in client.get("/api/v1/notifications/", headers=party).json()["results"]
                if n["type"] == "order_completed" and n["data"] == {"order_id": order}
            ]
            assert completed["message"] == "Заказ завершен автоматически: срок проверки истек.", who
            told[who] = completed["id"]
        assert told["buyer"] != told["creator"]
        assert client.post(f"/api/v1/notifications/{told['buyer']}/mark-as-read/", headers=creator).status_code == 404
        assert client.post(f"/api/v1/notifications/{told['creator']}/mark-as-read/", headers=headers).status_code == 404
        assert client.post(f"/api/v1/notifications/{told['buyer']}/mark-as-read/", headers=headers).status_code == 200


def test_an_open_order_past_its_delivery_date_is_late(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        due = (clock.now().date() + timedelta(days=2)).isoformat()
        open_order = place(api, deal, delivery_date=due)["id"]
        finished = place(api, deal, delivery_date=due)["id"]
        act(api, deal.creator, finished, "accept")
        act(api, deal.creator, finished, "deliveries", {"message": "Готово"}, expect=201)
        act(api, deal.buyer, finished, "approve")
        assert client.get(f"/api/v1/orders/{open_order}/", headers=deal.buyer["headers"]).json()["is_late"] is False
        clock.advance(timedelta(days=3))
        headers = {"Authorization": f"Bearer {api.login(deal.buyer['username'])['access']}"}
        assert client.get(f"/api/v1/orders/{open_order}/", headers=headers).json()["is_late"] is True
        assert client.get(f"/api/v1/orders/{finished}/", headers=headers).json()["is_late"] is False
        listed = {o["id"]: o["is_late"] for o in client.get("/api/v1/orders/", headers=headers).json()["results"]}
        assert listed == {open_order: True, finished: False}
        assert date.fromisoformat(due) < clock.now().date()


def test_work_delivered_by_its_day_is_not_late_while_the_buyer_reviews_it(settings: Settings) -> None:
    """A delivered order waits for the buyer, not the creator: it read as late once its delivery date
    passed, though the work came in on time; one delivered after its day stays late."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        due = (clock.now().date() + timedelta(days=1)).isoformat()
        on_time, after_due, unfinished = (place(api, deal, delivery_date=due)["id"] for _ in range(3))
        act(api, deal.creator, on_time, "deliveries", {"message": "Готово"}, expect=201)
        act(api, deal.creator, unfinished, "accept")
        clock.advance(timedelta(days=2))  # past the day, short of auto-completion
        creator = api.login(deal.creator["username"])
        act(
            api,
            {"headers": {"Authorization": f"Bearer {creator['access']}"}},
            after_due,
            "deliveries",
            {"message": "Готово"},
            expect=201,
        )
        headers = {"Authorization": f"Bearer {api.login(deal.buyer['username'])['access']}"}
        late = {
            o: client.get(f"/api/v1/orders/{o}/", headers=headers).json()["is_late"]
            for o in (on_time, after_due, unfinished)
        }
        assert late == {on_time: False, after_due: True, unfinished: True}
        listed = {o["id"]: o["is_late"] for o in client.get("/api/v1/orders/", headers=headers).json()["results"]}
        assert listed == late


def test_the_history_command_prints_an_order_for_people_and_machines(settings: Settings, backend: str) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.backends import environment

    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        order = order_in(api, deal, "completed")
    env = os.environ | environment(backend, settings.database_url, settings.var_dir)
    command = [sys.executable, "-m", "ugc.cli", "history", "order", str(order)]
    text = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert f"Order {order}: 4 events" in text
    assert "OrderPlaced" in text and "WorkDelivered" in text and deal.creator["username"] in text
    machine = json.loads(
        subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    types = [e["type"] for e in machine["results"]]
    assert types == ["OrderPlaced", "OrderAccepted", "WorkDelivered", "OrderCompleted"]
    missing = subprocess.run(
        [sys.executable, "-m", "ugc.cli", "history", "order", "999999"], env=env, capture_output=True
    )
    assert missing.returncode == 1


def test_an_order_as_it_was_is_judged_late_as_it_was(
    settings: Settings, backend: str, database_url: str, var_dir: Path
) -> None:
    """`?as_of=` rebuilds the order as it was: on time then, though late now. It was judged against
    today, so every past version of a late order read as late, and `ugc history --as-of` with it."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        deal = a_deal(api)
        due = clock.now().date() + timedelta(days=2)
        placed = place(api, deal, delivery_date=due.isoformat())
        before_due = clock.now() + timedelta(days=1)
        clock.advance(timedelta(days=5))
        headers = {"Authorization": f"Bearer {api.login(deal.buyer['username'])['access']}"}
        order = f"/api/v1/orders/{placed['id']}/"
        assert client.get(order, headers=headers).json()["is_late"] is True
        for as_of in ("1", before_due.isoformat().replace("+00:00", "Z")):
            then = client.get(order, headers=headers, params={"as_of": as_of})
            assert then.status_code == 200, then.text
            assert then.json()["is_late"] is False, as_of
        after_due = (clock.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
        assert client.get(order, headers=headers, params={"as_of": after_due}).json()["is_late"] is True
        shown = run_ugc(
            environment(backend, database_url, var_dir), "history", "order", str(placed["id"]), "--as-of", "1", "--json"
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["order"]["is_late"] is False
