"""Every event says who caused it and which HTTP request: users, the scheduler, the operator's CLI."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path
from typing import Any

from commands.scheduler import AutoCompleter
from readmodels.orders import due_for_auto_completion
from tests.backends import environment
from tests.conftest import Api
from tests.orders_world import a_deal, order_in
from tests.servers import server_environment
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.events import SCHEDULER, actor_parts, operator_actor, user_actor
from ugc.ids import aggregate_id
from ugc.messaging import message_id
from ugc.orders import order_id


def latest(api: Api, application: str, originator: Any) -> Any:
    stores = api.client.app.state.services.orders.stores  # type: ignore[attr-defined]
    return list(stores[application].events.get(originator))[-1]


def test_a_request_records_its_user_and_its_id_and_echoes_it(api: Api) -> None:
    user = api.verified_user()
    sent = {"X-Request-ID": "client-req.42:a/b=c+d"}
    response = api.client.patch("/api/v1/users/me/", headers=user["headers"] | sent, json={"bio": "Снимаю"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == sent["X-Request-ID"]
    event = latest(api, "accounts", aggregate_id("user", user["id"]))
    assert (event.actor, event.request_id) == (user_actor(user["id"]), sent["X-Request-ID"])


def test_an_unsafe_or_overlong_request_id_is_replaced_and_the_new_one_recorded(api: Api) -> None:
    user = api.verified_user()
    for bad in ("a b", "x" * 129, "line\tbreak"):
        response = api.client.patch(
            "/api/v1/users/me/", headers=user["headers"] | {"X-Request-ID": bad}, json={"bio": bad}
        )
        given = response.headers["X-Request-ID"]
        assert response.status_code == 200 and given != bad and 0 < len(given) <= 128
        assert latest(api, "accounts", aggregate_id("user", user["id"])).request_id == given


def test_a_chat_message_sent_over_a_websocket_records_the_handshake_s_request_id(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    started = api.client.post("/api/v1/conversations/", headers=anna["headers"], json={"recipient_id": boris["id"]})
    number = started.json()["id"]
    url = f"/ws/conversations/{number}/?token={anna['access']}"
    with api.client.websocket_connect(url, headers={"X-Request-ID": "socket-1"}) as ws:
        ws.send_text('{"message": "Привет"}')
        sent = ws.receive_json()
        ws.close()
    event = latest(api, "messaging", message_id(sent["id"]))
    assert (event.actor, event.request_id) == (user_actor(anna["id"]), "socket-1")


def test_the_scheduler_records_itself_and_no_request(api: Api, clock: MovableClock) -> None:
    deal = a_deal(api)
    order = order_in(api, deal, "delivered")
    services = api.client.app.state.services  # type: ignore[attr-defined]
    clock.advance(services.orders.auto_complete_after)
    completer = AutoCompleter(services.orders, clock, lambda before: due_for_auto_completion(services.db, before))
    completer.run_once()
    event = latest(api, "orders", order_id(order))
    assert (type(event).__name__, event.actor, event.request_id) == ("AutoCompleted", SCHEDULER, None)
    assert actor_parts(event.actor) == ("system", "scheduler")


def test_a_cli_command_records_its_operator_and_no_request(
    api: Api, backend: str, database_url: str, var_dir: Path, settings: Settings
) -> None:
    user = api.verified_user()
    env = server_environment(environment(backend, database_url, var_dir))
    command = [sys.executable, "-m", "ugc.cli", "users", "grant", user["username"], "auditor"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    event = latest(api, "accounts", aggregate_id("user", user["id"]))
    assert (type(event).__name__, event.actor, event.request_id) == (
        "RoleGranted",
        operator_actor(getpass.getuser()),
        None,
    )
    assert actor_parts(event.actor) == ("operator", getpass.getuser())
    assert actor_parts(user_actor(7)) == ("user", 7)
