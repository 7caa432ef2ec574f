"""`Idempotency-Key` after a 503: a command that appended is never applied twice, and its retry
replays the first answer; a claim abandoned before it appended is taken over after a while."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from api import idempotency_keys
from api.canonical_json import canonical
from api.errors import message
from api.idempotency_keys import IdempotencyKeys, Stored
from commands.intents import Intent, announcing, from_text
from projections.runner import ProjectionRunner
from tests.backends import DATA_KEY
from tests.conftest import Api, new_client, version_of
from tests.orders_world import Deal, a_deal
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform import idempotency_keys as table
from ugc.platform.blocking import BlockingThreads
from ugc.platform.database import Database
from ugc.platform.store import EventStores

SLOW_FOR = 1.5
TIMEOUT = 0.5


@pytest.fixture
def slow_next_batch(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """`slow(application)`: the read models of that log take SLOW_FOR seconds to start their next batch.

    The pause comes before the batch's transaction: on SQLite a pause inside it would hold the one
    writer's lock and delay the command itself, not only its read models.
    """
    slowed: set[str] = set()
    lock = threading.Lock()
    apply = ProjectionRunner._apply

    def slowly(self: ProjectionRunner, application: str, projections: Any, tokens: Any = None) -> int:
        with lock:
            pause = application in slowed
            slowed.discard(application)
        if pause:
            time.sleep(SLOW_FOR)
        return apply(self, application, projections, tokens)

    def slow(application: str) -> None:
        with lock:
            slowed.add(application)

    monkeypatch.setattr(ProjectionRunner, "_apply", slowly)
    return slow


@pytest.fixture(scope="module")
def impatient(settings: Settings) -> Iterator[tuple[TestClient, MovableClock]]:
    """The app of the module's `world`s, whose commands wait TIMEOUT for their read models, and its
    clock: one for the module (starting one took 1-2 s), as each test has a deal of its own (its users,
    service and keys) and none moves the clock or leaves the app changed."""
    clock = MovableClock()
    with new_client(dataclasses.replace(settings, read_your_writes_timeout=TIMEOUT), clock) as client:
        yield client, clock


@pytest.fixture
def world(settings: Settings, impatient: tuple[TestClient, MovableClock]) -> tuple[Api, Deal, MovableClock]:
    client, clock = impatient
    api = Api(client, settings)
    return api, a_deal(api), clock


def stored(settings: Settings, application: str, topic: str) -> int:
    """How many events of `topic` the log of `application` holds."""
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        return len(stores[application].recorder.select_notifications(start=0, limit=1_000_000, topics=[topic]))
    finally:
        stores.close()


def placed_orders(settings: Settings) -> int:
    return stored(settings, "orders", "ugc.Order.Placed")


def order_body(deal: Deal) -> dict[str, Any]:
    return {"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()}


def test_a_retry_after_a_503_replays_the_first_answer_and_places_one_order(
    settings: Settings, world: tuple[Api, Deal, MovableClock], slow_next_batch: Callable[[str], None]
) -> None:
    api, deal, _ = world
    headers = deal.buyer["headers"] | {"Idempotency-Key": f"slow-{deal.buyer['id']}"}
    before = placed_orders(settings)
    slow_next_batch("orders")
    first = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert first.status_code == 503, first.text
    assert first.headers["retry-after"] == "1"
    retry = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    again = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert again.status_code == 201 and again.json() == retry.json()
    # The answer's ETag comes with it, so the client's next If-Match needs no read first.
    assert retry.headers["etag"] == again.headers["etag"] and version_of(again) == 1
    assert placed_orders(settings) == before + 1
    listed = api.client.get("/api/v1/orders/", headers=deal.buyer["headers"]).json()
    assert [o["id"] for o in listed["results"]] == [retry.json()["id"]]


@dataclass(frozen=True)
class Command:
    """An idempotent command other than placing: what it needs first, where it goes, what it stores."""

    name: str
    application: str  # whose read models it waits for
    topic: str  # the event it appends, once
    prepare: Callable[[Api, Deal], tuple[str, dict[str, Any], dict[str, str]]]  # path, body, caller's headers
    status: int


def _accept(api: Api, deal: Deal) -> tuple[str, dict[str, Any], dict[str, str]]:
    order = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=order_body(deal))
    assert order.status_code == 201, order.text
    return f"/api/v1/orders/{order.json()['id']}/accept/", {}, deal.creator["headers"]


def _send(api: Api, deal: Deal) -> tuple[str, dict[str, Any], dict[str, str]]:
    chat = api.client.post(
        "/api/v1/conversations/", headers=deal.buyer["headers"], json={"recipient_id": deal.creator["id"]}
    )
    assert chat.status_code in (200, 201), chat.text
    return f"/api/v1/conversations/{chat.json()['id']}/messages/", {"message": "Здравствуйте"}, deal.buyer["headers"]


def _mark_all_read(api: Api, deal: Deal) -> tuple[str, dict[str, Any], dict[str, str]]:
    """With something to mark: marking all read with nothing new records nothing, and answers at once."""
    placed = api.client.post("/api/v1/orders/", headers=deal.buyer["headers"], json=order_body(deal))
    assert placed.status_code == 201, placed.text
    return "/api/v1/notifications/mark-all-read/", {}, deal.creator["headers"]


def _create_service(api: Api, deal: Deal) -> tuple[str, dict[str, Any], dict[str, str]]:
    category = api.client.get("/api/v1/categories/").json()["results"][0]["id"]
    body = {
        "title": "Ещё обзор",
        "description": "Обзор",
        "category_id": category,
        "base_price": 900,
        "delivery_time": 5,
    }
    return "/api/v1/services/", body, deal.creator["headers"]


def _add_creator_skill(api: Api, deal: Deal) -> tuple[str, dict[str, Any], dict[str, str]]:
    skill = api.client.get("/api/skills/").json()["results"][0]["id"]
    return "/api/creator-skills/", {"skill": skill, "level": 3}, deal.creator["headers"]


COMMANDS = [
    Command("accept an order", "orders", "ugc.Order.Accepted", _accept, 200),
    Command("create a service", "catalog", "ugc.Service.Created", _create_service, 201),
    Command("add a creator skill", "catalog", "ugc.CreatorSkill.Added", _add_creator_skill, 201),
    Command("send a message", "messaging", "ugc.Message.Sent", _send, 201),
    Command("mark all notifications read", "messaging", "ugc.NotificationsRead.AllRead", _mark_all_read, 200),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_every_idempotent_command_keeps_its_key_after_a_503_and_replays_its_first_answer(
    settings: Settings, world: tuple[Api, Deal, MovableClock], slow_next_batch: Callable[[str], None], command: Command
) -> None:
    api, deal, _ = world
    path, body, caller = command.prepare(api, deal)
    headers = caller | {"Idempotency-Key": f"{command.name}-{deal.buyer['id']}"}
    before = stored(settings, command.application, command.topic)
    slow_next_batch(command.application)
    first = api.client.post(path, headers=headers, json=body)
    assert first.status_code == 503, first.text
    retry = api.client.post(path, headers=headers, json=body)
    assert retry.status_code == command.status, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert stored(settings, command.application, command.topic) == before + 1
    # Before its save the command recorded what it would append: the event store holds it.
    user_id = deal.creator["id"] if caller == deal.creator["headers"] else deal.buyer["id"]
    s = api.client.app.state.services  # type: ignore[attr-defined]
    row = table.claimed(s.db, user_id, headers["Idempotency-Key"])
    assert row is not None and row["intent"], row
    announced = from_text(row["intent"])
    assert {intent.application for intent in announced} == {command.application}
    assert s.idempotency.applied(announced)


def test_a_claim_abandoned_before_it_appended_is_taken_over_after_a_while(
    settings: Settings, world: tuple[Api, Deal, MovableClock]
) -> None:
    api, deal, clock = world
    key = f"abandoned-{deal.buyer['id']}"
    headers = deal.buyer["headers"] | {"Idempotency-Key": key}
    db = Database(settings.database_url)
    try:
        # A process claimed the key and died before appending anything.
        abandoned_at = clock.now() - timedelta(seconds=settings.idempotency_in_flight + 1)
        assert table.claim(
            db, deal.buyer["id"], key, _fingerprint(order_body(deal)), abandoned_at, abandoned_at, abandoned_at
        )
    finally:
        db.close()
    before = placed_orders(settings)
    taken_over = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert taken_over.status_code == 201, taken_over.text
    assert placed_orders(settings) == before + 1


def test_a_retry_while_the_first_request_runs_is_told_when_to_ask_again(
    settings: Settings, world: tuple[Api, Deal, MovableClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, deal, clock = world
    key = f"in-flight-{deal.buyer['id']}"
    db = Database(settings.database_url)
    try:  # a request of another process claimed the key a moment ago and runs still
        assert table.claim(
            db, deal.buyer["id"], key, _fingerprint(order_body(deal)), clock.now(), clock.now(), clock.now()
        )
    finally:
        db.close()
    monkeypatch.setattr(idempotency_keys, "WAIT", 0.2)  # of 10 s, for its answer
    retry = api.client.post(
        "/api/v1/orders/", headers=deal.buyer["headers"] | {"Idempotency-Key": key}, json=order_body(deal)
    )
    assert (retry.status_code, retry.json()) == (409, {"error": message("idempotency_key_in_flight")})
    assert retry.headers["retry-after"] == "1"


def test_a_command_turned_away_for_want_of_a_thread_lets_go_of_its_key_for_the_retry(
    settings: Settings, backend: str, world: tuple[Api, Deal, MovableClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overload between the claim and the command: the command waits for a thread past the queue
    timeout (503), and letting go of the key, which needs a thread too, must not be turned away the
    same way, or the key stays claimed and its retries answer 409 until the claim expires."""
    if backend != "postgres":
        pytest.skip("a PostgreSQL lock holds the claim back")
    api, deal, _ = world
    headers = deal.buyer["headers"] | {"Idempotency-Key": f"turned-away-{deal.buyer['id']}"}
    s = api.client.app.state.services  # type: ignore[attr-defined]
    portal = api.client.portal
    assert portal is not None
    fewer = BlockingThreads(2, wait=0.3)  # the process's threads, fewer, so two jobs fill them
    monkeypatch.setattr(s, "blocking", fewer)  # the module's app has its own back after the test
    busy = threading.Event()
    occupy = functools.partial(s.blocking.run, busy.wait, patient=True)
    holder = psycopg.connect(settings.database_url, autocommit=True)
    answers: list[Any] = []
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE")  # the claim waits on its thread
        portal.start_task_soon(occupy)  # the other thread
        placing = threading.Thread(
            target=lambda: answers.append(api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal)))
        )
        placing.start()
        _until_a_lock_is_awaited(holder, "idempotency_keys")
        portal.start_task_soon(occupy)  # in line for the claim's thread once the claim is done
        portal.call(asyncio.sleep, 0.05)
        holder.execute("ROLLBACK")  # the claim is done; the command finds both threads busy: 503
        time.sleep(1.0)  # past the queue timeout: the key's release waits for a thread too
        busy.set()
        placing.join(timeout=30)
    finally:
        busy.set()
        holder.close()
    assert answers and answers[0].status_code == 503, answers and answers[0].text
    before = placed_orders(settings)
    retry = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert retry.status_code == 201, retry.text
    assert placed_orders(settings) == before + 1
    fewer.shutdown()


def _until_a_lock_is_awaited(connection: psycopg.Connection[Any], table_name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", (table_name,)
        ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"nothing waited for the lock on {table_name}")


def test_a_claim_whose_command_appended_is_never_taken_over(
    settings: Settings, world: tuple[Api, Deal, MovableClock]
) -> None:
    api, deal, clock = world
    key = f"appended-{deal.buyer['id']}"
    headers = deal.buyer["headers"] | {"Idempotency-Key": key}
    db = Database(settings.database_url)
    try:
        long_ago = clock.now() - timedelta(seconds=settings.idempotency_in_flight + 1)
        assert table.claim(db, deal.buyer["id"], key, _fingerprint(order_body(deal)), long_ago, long_ago, long_ago)
        table.appended(db, deal.buyer["id"], key, {"orders": 1})
        table.release(db, deal.buyer["id"], key, "")  # refused: it appended
        assert table.claimed(db, deal.buyer["id"], key) is not None
    finally:
        db.close()
    before = placed_orders(settings)
    refused = api.client.post("/api/v1/orders/", headers=headers, json=order_body(deal))
    assert refused.status_code == 409, refused.text
    assert refused.json() == {"error": message("idempotency_key_answer_lost")}
    assert placed_orders(settings) == before


def test_a_claim_whose_process_died_right_after_its_append_is_answered_lost_not_run_again(
    settings: Settings, world: tuple[Api, Deal, MovableClock]
) -> None:
    """The crash window: the order appended, the process gone before the key learnt where."""
    api, deal, clock = world
    key = f"died-after-append-{deal.buyer['id']}"
    headers = deal.buyer["headers"] | {"Idempotency-Key": key}
    body = order_body(deal)
    s = api.client.app.state.services  # type: ignore[attr-defined]
    long_ago = clock.now() - timedelta(seconds=settings.idempotency_in_flight + 1)
    assert table.claim(s.db, deal.buyer["id"], key, _fingerprint(body), long_ago, long_ago, long_ago)
    before = placed_orders(settings)

    def claimed_and_appended() -> None:  # what the request did before its process died
        announcing(functools.partial(s.idempotency.intend, deal.buyer["id"], key))
        s.orders.place(deal.buyer["id"], deal.service["id"], "", date.fromisoformat(body["delivery_date"]), [])

    contextvars.copy_context().run(claimed_and_appended)
    row = table.claimed(s.db, deal.buyer["id"], key)
    assert row is not None and row["intent"] and row["appended"] is None and row["status"] is None, row
    assert placed_orders(settings) == before + 1

    retry = api.client.post("/api/v1/orders/", headers=headers, json=body)
    assert retry.status_code == 409, retry.text
    assert retry.json() == {"error": message("idempotency_key_answer_lost")}
    again = api.client.post("/api/v1/orders/", headers=headers, json=body)
    assert again.status_code == 409 and again.json() == retry.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert placed_orders(settings) == before + 1  # never placed a second time


def test_a_claim_whose_process_died_before_its_announced_append_is_taken_over(
    settings: Settings, world: tuple[Api, Deal, MovableClock]
) -> None:
    """An intent recorded, the save never made: nothing of the command is stored, a retry runs it."""
    api, deal, clock = world
    key = f"died-before-append-{deal.buyer['id']}"
    headers = deal.buyer["headers"] | {"Idempotency-Key": key}
    body = order_body(deal)
    s = api.client.app.state.services  # type: ignore[attr-defined]
    long_ago = clock.now() - timedelta(seconds=settings.idempotency_in_flight + 1)
    assert table.claim(s.db, deal.buyer["id"], key, _fingerprint(body), long_ago, long_ago, long_ago)
    never_saved = Intent("orders", uuid.uuid4(), 1, clock.now())
    s.idempotency.intend(deal.buyer["id"], key, [never_saved])
    before = placed_orders(settings)
    taken_over = api.client.post("/api/v1/orders/", headers=headers, json=body)
    assert taken_over.status_code == 201, taken_over.text
    assert "idempotent-replayed" not in taken_over.headers
    assert placed_orders(settings) == before + 1


def _fingerprint(body: dict[str, Any]) -> str:
    import hashlib

    import orjson

    content = canonical(orjson.dumps(body))
    return hashlib.sha256(b"\n".join([b"POST", b"/api/v1/orders/", content])).hexdigest()


def test_a_keys_record_outlives_a_session_terminated_while_its_connection_was_pooled(
    backend: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy pooled connection is handed out unpinged (ugc/platform/idle_check.py), so a terminated
    session is found by the key's own update: one more try on a live connection, rather than the
    request failing after its append and settling its key as "answer lost"."""
    if backend != "postgres":
        pytest.skip("terminating a session is PostgreSQL's")
    monkeypatch.setenv("UGC_DB_POOL_MAX", "1")  # the update gets the very connection whose session ends
    db = Database(settings.database_url)
    try:
        keys = IdempotencyKeys(db, MovableClock(), timedelta(seconds=30), lambda intents: False)
        key = f"cut-{uuid.uuid4().hex}"
        assert keys.claim(7, key, "fingerprint") is None
        with db.transaction() as cur:
            row = cur.execute("SELECT pg_backend_pid() AS pid").fetchone()
            assert row is not None
            pid = row["pid"]
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        keys.appended(7, key, {"orders": 41})
        keys.finish(7, key, Stored(201, "{}"))
        row = table.claimed(db, 7, key)
        assert row is not None and row["appended"] and row["status"] == 201
    finally:
        db.close()


def test_a_replayed_204_has_the_first_answers_headers_and_no_content_type(api: Api) -> None:
    creator = api.creator()["headers"]
    skill = api.client.get("/api/skills/").json()["results"][0]["id"]
    added = api.client.post("/api/creator-skills/", headers=creator, json={"skill": skill, "level": 3})
    assert added.status_code == 201, added.text
    headers = creator | {"Idempotency-Key": f"remove-{added.json()['id']}"}
    first = api.client.delete(f"/api/creator-skills/{added.json()['id']}/", headers=headers)
    retry = api.client.delete(f"/api/creator-skills/{added.json()['id']}/", headers=headers)
    assert (first.status_code, retry.status_code) == (204, 204), retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert "content-type" not in first.headers and "content-type" not in retry.headers, retry.headers
    assert retry.content == first.content == b""
