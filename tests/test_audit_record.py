"""The audit record: an order's history over HTTP and from `ugc history order ID`, and an auditor's list.

Given one order taken through its whole lifecycle (each request with its own `X-Request-ID`, a
minute apart), the record's entries carry what the issue asks (who, which request, when, the
domain fields only, in the API's formats), page like every list, and read the same — to the
byte — from the CLI as from HTTP; `as_of` cuts both alike. Then an auditor lists every order and
filters it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.sql import SQL, Identifier
from starlette.testclient import TestClient

from readmodels.audit_record import actor
from tests.backends import environment, fresh_database, postgres_available
from tests.conftest import Api, new_client
from tests.orders_world import Deal, a_deal, order_in, place
from tests.test_api_orders import grant
from ugc import cli
from ugc.clock import MovableClock
from ugc.config import Settings, sqlite_path
from ugc.events import INTERNAL_FIELDS, SCHEDULER, UNRECORDED, operator_actor, user_actor
from ugc.orders import order_id

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")  # six fractional digits, always
ENTRY_KEYS = {
    "version",
    "type",
    "occurred_at",
    "actor",
    "request_id",
    "data",
    "position",
    "recorded_at",
    "stream",
    "topic",
    "payload",
    "hash",
    "previous_hash",
}
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("creator", "accept", {}),
    ("creator", "deliveries", {"message": "Черновик"}),
    ("buyer", "request-revision", {"message": "Короче"}),
    ("creator", "deliveries", {"message": "Готово"}),
    ("buyer", "approve", {}),
    ("buyer", "reviews", {"content": "Отлично", "rating": 5}),
]
TYPES = [
    "OrderPlaced",
    "OrderAccepted",
    "WorkDelivered",
    "RevisionRequested",
    "WorkDelivered",
    "OrderCompleted",
    "OrderReviewed",
]


@dataclass
class Lifecycle:
    deal: Deal
    order: int
    request_ids: list[str]

    @property
    def url(self) -> str:
        return f"/api/v1/orders/{self.order}/history/"


@pytest.fixture(scope="module")
def lifecycle(app_client: TestClient, settings: Settings, clock: MovableClock) -> Lifecycle:
    api = Api(app_client, settings)
    deal = a_deal(api)
    ids = [f"audit-{n}-{deal.buyer['id']}" for n in range(len(STEPS) + 1)]
    body = {
        "service_id": deal.service["id"],
        "requirements": "Распаковка и обзор",
        "delivery_date": (clock.now().date() + timedelta(days=10)).isoformat(),
        "selected_option_ids": [option["id"] for option in deal.service["options"]],
    }
    placed = app_client.post("/api/v1/orders/", json=body, headers=deal.buyer["headers"] | {"X-Request-ID": ids[0]})
    assert placed.status_code == 201, placed.text
    order = placed.json()["id"]
    for (who, action, step), request_id in zip(STEPS, ids[1:], strict=True):
        clock.advance(timedelta(minutes=1))
        party = deal.creator if who == "creator" else deal.buyer
        answer = app_client.post(
            f"/api/v1/orders/{order}/{action}/", json=step, headers=party["headers"] | {"X-Request-ID": request_id}
        )
        assert answer.status_code in (200, 201), answer.text
    return Lifecycle(deal, order, ids)


@pytest.fixture
def run_cli(
    backend: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> Iterator[Any]:
    """`ugc ARGS...` in this process on the test's database: (exit code, stdout bytes, stderr text)."""
    for name, value in environment(backend, settings.database_url, settings.var_dir).items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> tuple[int, bytes, str]:
        code = cli.main(list(args))
        out, err = capsysbinary.readouterr()
        return code, out, err.decode()

    yield run


def all_pages(client: TestClient, url: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every entry of a paginated answer, following `next` (an absolute URL) to the end."""
    page = client.get(url, headers=headers, params=params)
    assert page.status_code == 200, page.text
    entries: list[dict[str, Any]] = page.json()["results"]
    while page.json()["next"]:
        page = client.get(page.json()["next"], headers=headers)
        assert page.status_code == 200, page.text
        entries += page.json()["results"]
    return entries


def test_each_entry_says_what_who_which_request_and_when_in_the_api_formats(
    app_client: TestClient, lifecycle: Lifecycle
) -> None:
    deal = lifecycle.deal
    answer = app_client.get(lifecycle.url, headers=deal.buyer["headers"], params={"page_size": 100})
    assert answer.status_code == 200, answer.text
    entries = answer.json()["results"]
    assert answer.json()["count"] == len(entries) == 7
    assert [e["type"] for e in entries] == TYPES and [e["version"] for e in entries] == list(range(1, 8))
    assert all(set(e) == ENTRY_KEYS for e in entries)
    assert all(ISO_UTC.match(e["occurred_at"]) for e in entries)
    times = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in entries]
    assert [later - earlier for earlier, later in zip(times, times[1:], strict=False)] == [timedelta(minutes=1)] * 6
    assert [e["request_id"] for e in entries] == lifecycle.request_ids
    buyer = {"kind": "user", "id": deal.buyer["id"], "username": deal.buyer["username"]}
    creator = {"kind": "user", "id": deal.creator["id"], "username": deal.creator["username"]}
    assert [e["actor"] for e in entries] == [buyer, creator, creator, buyer, creator, buyer, buyer]
    # Domain fields only: no envelope, nothing a key of the entry already says, no internals.
    envelope = {"originator_id", "originator_version", "originator_topic", "timestamp", "at", "actor", "request_id"}
    assert not any((envelope | INTERNAL_FIELDS) & set(e["data"]) for e in entries)
    placed = entries[0]["data"]
    assert (placed["price"], placed["total_price"]) == (1000, 1350.5)
    assert [o["price"] for o in placed["options"]] == [200, 150.5]
    assert '"price":1000,' in answer.text and '"total_price":1350.5,' in answer.text  # numbers, never "1000.00"
    assert placed["buyer"] == deal.buyer["id"] and placed["service"] == deal.service["id"]
    assert entries[2]["data"]["message"] == "Черновик" and entries[6]["data"]["rating"] == 5
    assert entries[1]["data"] == {} and entries[5]["data"] == {}
    # Where the log holds each event, and what its hash covers and chains to.
    positions = [e["position"] for e in entries]
    assert all(isinstance(p, int) for p in positions) and positions == sorted(set(positions))
    assert all(ISO_UTC.match(e["recorded_at"]) for e in entries)
    assert {e["stream"] for e in entries} == {str(order_id(lifecycle.order))}
    assert [e["topic"] for e in entries][:2] == ["ugc.Order.Placed", "ugc.Order.Accepted"]
    assert all(re.fullmatch("[0-9a-f]{64}", e["hash"]) for e in entries)
    assert [e["previous_hash"] for e in entries] == ["0" * 64] + [e["hash"] for e in entries[:-1]]
    stored = json.loads(entries[0]["payload"])  # the stored state, exactly: the library's own encoding
    assert stored["total_price"] == {"_type_": "decimal_str", "_data_": "1350.50"}
    assert stored["request_id"] == lifecycle.request_ids[0]


def test_every_kind_of_actor_reads_as_kind_id_and_username() -> None:
    names = {7: "anna"}
    assert actor(user_actor(7), names) == {"kind": "user", "id": 7, "username": "anna"}
    assert actor(user_actor(8), names) == {"kind": "user", "id": 8, "username": None}  # no party of the order
    assert actor(SCHEDULER, names) == {"kind": "system", "id": None, "username": "scheduler"}
    assert actor(operator_actor("alice"), names) == {"kind": "operator", "id": None, "username": "alice"}
    assert actor(UNRECORDED, names) == {"kind": "unrecorded", "id": None, "username": None}


def test_the_history_pages_like_every_list(app_client: TestClient, lifecycle: Lifecycle, settings: Settings) -> None:
    headers = lifecycle.deal.creator["headers"]
    whole = app_client.get(lifecycle.url, headers=headers, params={"page_size": 100}).json()["results"]
    first = app_client.get(lifecycle.url, headers=headers, params={"page_size": 3}).json()
    base = f"{settings.public_url}{lifecycle.url}"
    assert (first["count"], first["next"], first["previous"]) == (7, f"{base}?page_size=3&page=2", None)
    last = app_client.get(lifecycle.url, headers=headers, params={"page_size": 3, "page": 3}).json()
    assert (last["next"], last["previous"], len(last["results"])) == (None, f"{base}?page_size=3&page=2", 1)
    assert all_pages(app_client, lifecycle.url, headers, page_size=3) == whole
    assert app_client.get(lifecycle.url, headers=headers, params={"page_size": 3, "page": 4}).status_code == 404
    default = app_client.get(lifecycle.url, headers=headers).json()
    assert default["results"] == whole and default["next"] is None


def test_the_cli_prints_the_record_http_serves(app_client: TestClient, lifecycle: Lifecycle, run_cli: Any) -> None:
    headers = lifecycle.deal.buyer["headers"]
    code, out, err = run_cli("history", "order", str(lifecycle.order), "--json")
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed["results"] == all_pages(app_client, lifecycle.url, headers, page_size=2)
    assert (printed["count"], printed["next"], printed["previous"]) == (7, None, None)
    # One page of HTTP holding every entry is the very same bytes: one builder, one encoder.
    assert out.rstrip(b"\n") == app_client.get(lifecycle.url, headers=headers, params={"page_size": 100}).content


def test_as_of_cuts_the_record_and_shows_the_order_alike_over_http_and_in_the_cli(
    app_client: TestClient, lifecycle: Lifecycle, run_cli: Any
) -> None:
    headers, order = lifecycle.deal.buyer["headers"], lifecycle.order
    entries = app_client.get(lifecycle.url, headers=headers, params={"page_size": 100}).json()["results"]
    fourth = datetime.fromisoformat(entries[3]["occurred_at"].replace("Z", "+00:00"))
    for as_of, versions, status in (
        ("1", 1, "pending"),
        ("3", 3, "delivered"),
        ((fourth + timedelta(seconds=30)).isoformat(), 4, "in_progress"),
    ):
        code, out, err = run_cli("history", "order", str(order), "--as-of", as_of, "--json")
        assert (code, err) == (0, "")
        printed = json.loads(out)
        history = app_client.get(lifecycle.url, headers=headers, params={"as_of": as_of, "page_size": 100}).json()
        then = app_client.get(f"/api/v1/orders/{order}/", headers=headers, params={"as_of": as_of}).json()
        assert printed == {"order": then, "history": history}
        assert history["count"] == versions and history["results"] == entries[:versions]
        assert then["status"] == status
        code, out, _ = run_cli("history", "order", str(order), "--as-of", as_of)
        counted = "1 event" if versions == 1 else f"{versions} events"  # "Order 5: 1 events as of 1" before
        assert code == 0 and f"Order {order}: {counted} as of {as_of}\n" in out.decode()
        assert re.search(rf"^  status +\"{status}\"$", out.decode(), re.MULTILINE)
    before = (
        datetime.fromisoformat(entries[0]["occurred_at"].replace("Z", "+00:00")) - timedelta(seconds=1)
    ).isoformat()
    refused = {"99": 422, "0": 422, "yesterday": 422, "2026-06-01T12:00:00": 422, before: 404}
    for as_of, expected in refused.items():
        assert app_client.get(lifecycle.url, headers=headers, params={"as_of": as_of}).status_code == expected, as_of
    fields = app_client.get(lifecycle.url, headers=headers, params={"as_of": "99"}).json()["fields"]
    assert fields == {"as_of": ["Версия должна быть от 1 до 7."]}


@pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_the_record_is_in_utc_whatever_time_zone_the_database_is_set_to(
    tmp_path: Path, clock: MovableClock, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    with fresh_database("postgres", tmp_path, migrated=True) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL("ALTER DATABASE {} SET timezone = 'Asia/Kolkata'").format(Identifier(conn.info.dbname)))
        env = environment("postgres", url, tmp_path)
        settings = Settings.from_env(env)
        with new_client(settings, clock) as client:
            api = Api(client, settings)
            deal = a_deal(api)
            order = place(api, deal)["id"]
            served = client.get(f"/api/v1/orders/{order}/history/", headers=deal.buyer["headers"]).json()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["history", "order", str(order), "--json"]) == 0
        printed = json.loads(capsysbinary.readouterr().out)
    for entries in (served["results"], printed["results"]):
        assert len(entries) == 1 and ISO_UTC.match(entries[0]["recorded_at"]), entries[0]["recorded_at"]


def test_the_cli_refuses_in_one_line_without_a_traceback(lifecycle: Lifecycle, run_cli: Any) -> None:
    order = str(lifecycle.order)
    cases = {
        ("abc",): 2,
        ("0",): 2,
        ("999999",): 1,
        ("9223372036854775807",): 1,  # a BIGINT id no order has, as the API's 404, not a malformed one
        ("9223372036854775808",): 2,
        (order, "--as-of", "yesterday"): 2,
        (order, "--as-of", "2026-06-01T12:00:00"): 2,
        (order, "--as-of", "99"): 2,
        (order, "--as-of", "2000-01-01T00:00:00Z"): 1,
    }
    for args, expected in cases.items():
        code, out, err = run_cli("history", "order", *args)
        assert (code, out) == (expected, b""), args
        assert err.count("\n") == 1 and err.startswith("ugc: history: ") and "Traceback" not in err, err


def test_the_table_is_aligned_and_reads_values_as_the_record_writes_them(lifecycle: Lifecycle, run_cli: Any) -> None:
    code, out, _ = run_cli("history", "order", str(lifecycle.order))
    assert code == 0
    title, header, *rows = out.decode().splitlines()
    assert title == f"Order {lifecycle.order}: 7 events" and len(rows) == 7
    for column in ("OCCURRED AT", "TYPE", "ACTOR", "REQUEST", "DATA"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in rows), column
    assert rows[0].split()[2] == "OrderPlaced" and lifecycle.request_ids[0] in rows[0]
    assert "price=1000 " in rows[0] and "total_price=1350.5" in rows[0] and "Decimal" not in out.decode()
    assert f"{lifecycle.deal.creator['username']} (user {lifecycle.deal.creator['id']})" in rows[1]


# An auditor's list -----------------------------------------------------------------------------


@dataclass
class Market:
    auditor: dict[str, Any]
    first: Deal
    second: Deal
    orders: dict[str, dict[str, Any]]  # pending, completed (first deal), cancelled (second deal)


@pytest.fixture(scope="module")
def market(app_client: TestClient, settings: Settings, clock: MovableClock) -> Market:
    api = Api(app_client, settings)
    first, second = a_deal(api), a_deal(api)
    orders = {}
    for name, deal, status in (
        ("pending", first, "pending"),
        ("completed", first, "completed"),
        ("cancelled", second, "cancelled"),
    ):
        clock.advance(timedelta(seconds=10))
        orders[name] = app_client.get(
            f"/api/v1/orders/{order_in(api, deal, status)}/", headers=deal.buyer["headers"]
        ).json()
    return Market(grant(api, api.verified_user(), "auditor"), first, second, orders)


def listed(client: TestClient, who: dict[str, Any], **params: Any) -> list[int]:
    return [o["id"] for o in all_pages(client, "/api/v1/orders/", who["headers"], page_size=100, **params)]


def test_an_auditor_lists_every_order_newest_first(app_client: TestClient, market: Market) -> None:
    everything = listed(app_client, market.auditor)
    assert everything == sorted(everything, reverse=True)
    assert {o["id"] for o in market.orders.values()} <= set(everything)
    page = app_client.get("/api/v1/orders/", headers=market.auditor["headers"], params={"page_size": 1}).json()
    assert page["count"] == len(everything) and len(page["results"]) == 1
    # Their own orders, as one party, are what `role` asks for, as for anyone.
    assert listed(app_client, market.auditor, role="buyer") == []
    # Anyone else's filters narrow their own orders: never someone else's.
    buyer, creator = market.first.buyer, market.first.creator
    completed, pending = market.orders["completed"], market.orders["pending"]
    assert listed(app_client, buyer) == [completed["id"], pending["id"]]
    assert listed(app_client, buyer, buyer=market.second.buyer["id"]) == []
    assert listed(app_client, creator, buyer=buyer["id"]) == [completed["id"], pending["id"]]
    assert listed(app_client, creator, role="buyer", buyer=buyer["id"]) == []
    assert listed(app_client, buyer, created_after=completed["created_at"]) == [completed["id"]]
    assert listed(app_client, creator, creator=creator["id"], created_before=completed["created_at"]) == [pending["id"]]
    refused = app_client.get("/api/v1/orders/", headers=buyer["headers"], params={"created_after": "garbage"})
    assert refused.status_code == 422 and set(refused.json()["fields"]) == {"created_after"}
    mine = app_client.get("/api/v1/orders/", headers=creator["headers"], params={"buyer": buyer["id"], "page_size": 1})
    assert mine.json()["count"] == 2 and len(mine.json()["results"]) == 1


def test_each_filter_narrows_the_auditors_list(app_client: TestClient, market: Market) -> None:
    auditor, orders = market.auditor, market.orders
    pending, completed, cancelled = (orders[name]["id"] for name in ("pending", "completed", "cancelled"))
    assert listed(app_client, auditor, buyer=market.first.buyer["id"]) == [completed, pending]
    assert listed(app_client, auditor, creator=market.second.creator["id"]) == [cancelled]
    assert listed(app_client, auditor, creator=market.first.creator["id"], status="pending") == [pending]
    assert listed(app_client, auditor, buyer=market.first.buyer["id"], creator=market.second.creator["id"]) == []
    by_status = listed(app_client, auditor, status="cancelled")
    assert cancelled in by_status and not {pending, completed} & set(by_status)
    total = app_client.get("/api/v1/orders/", headers=auditor["headers"], params={"status": "cancelled"}).json()
    assert total["count"] == len(by_status)  # every order's count in a status, kept by the projection
    placed = orders["completed"]["created_at"]
    assert listed(app_client, auditor, buyer=market.first.buyer["id"], created_after=placed) == [completed]
    assert listed(app_client, auditor, buyer=market.first.buyer["id"], created_before=placed) == [pending]
    # 100 ns after it: after the order, whichever bound it is (past the microsecond was cut, both wrong).
    just_after = f"{datetime.fromisoformat(placed.replace('Z', '+00:00')):%Y-%m-%dT%H:%M:%S.%f}1Z"
    assert listed(app_client, auditor, buyer=market.first.buyer["id"], created_after=just_after) == []
    assert listed(app_client, auditor, buyer=market.first.buyer["id"], created_before=just_after) == [
        completed,
        pending,
    ]
    window = listed(app_client, auditor, created_after=orders["pending"]["created_at"], created_before=placed)
    assert pending in window and not {completed, cancelled} & set(window)
    day = placed[:10]
    assert completed in listed(app_client, auditor, created_after=day)  # a date is that day's midnight, UTC
    # The counts agree with the rows, and the links keep the filters.
    first = app_client.get(
        "/api/v1/orders/",
        headers=auditor["headers"],
        params={"buyer": market.first.buyer["id"], "created_before": "2999-01-01", "page_size": 1},
    ).json()
    assert first["count"] == 2 and first["next"].endswith(
        f"?buyer={market.first.buyer['id']}&created_before=2999-01-01&page_size=1&page=2"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("buyer", "abc", "Ожидается целое число."),
        ("buyer", "0", "Ожидается положительное целое число."),
        ("buyer", "-1", "Ожидается положительное целое число."),
        ("creator", str(2**63), "Ожидается положительное целое число."),
        ("created_after", "yesterday", "Ожидается дата или время ISO 8601."),
        ("created_after", "2026-02-30", "Ожидается дата или время ISO 8601."),
        ("created_before", "2026-06-01T12:00:00", "Укажите часовой пояс (например, Z)."),
        ("status", "lost", "Допустимые значения: pending, in_progress, delivered, completed, cancelled."),
    ],
)
def test_a_bad_filter_is_a_422_naming_the_field(
    app_client: TestClient, market: Market, name: str, value: str, message: str
) -> None:
    answer = app_client.get("/api/v1/orders/", headers=market.auditor["headers"], params={name: value})
    assert (answer.status_code, answer.json()) == (
        422,
        {"error": "Ошибка валидации данных.", "fields": {name: [message]}},
    )


EARLIEST = ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00")  # the second before any UTC time Python holds
LATEST = ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00")  # the second after any


def test_times_past_the_years_python_holds_are_the_first_and_the_last_moment(
    app_client: TestClient, lifecycle: Lifecycle, market: Market, run_cli: Any
) -> None:
    url, headers, auditor = f"/api/v1/orders/{lifecycle.order}/", lifecycle.deal.buyer["headers"], market.auditor
    now, everything = app_client.get(url, headers=headers).json(), listed(app_client, auditor)
    for as_of in EARLIEST:  # before the order was placed
        assert app_client.get(url, headers=headers, params={"as_of": as_of}).status_code == 404, as_of
        assert run_cli("history", "order", str(lifecycle.order), "--as-of", as_of)[0] == 1, as_of
        assert listed(app_client, auditor, created_after=as_of) == everything
        assert listed(app_client, auditor, created_before=as_of) == []
    for as_of in LATEST:  # after all its events
        assert app_client.get(url, headers=headers, params={"as_of": as_of}).json() == now, as_of
        assert run_cli("history", "order", str(lifecycle.order), "--as-of", as_of)[0] == 0, as_of
        assert listed(app_client, auditor, created_after=as_of) == []
        assert listed(app_client, auditor, created_before=as_of) == everything


def _rewrite_stored_state(settings: Settings, position: int, state: bytes) -> None:
    """As an intruder with the database's files would: the orders log's stored state at `position`."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE orders_events SET state = %s WHERE notification_id = %s", (state, position))
    else:
        main = sqlite_path(url)
        with closing(sqlite3.connect(main.with_name(f"{main.stem}.orders{main.suffix}"))) as lite, lite:
            lite.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state, position))


@pytest.mark.parametrize("state", [b"{not json", b'{"timestamp": 1}'], ids=["not-json", "fields-missing"])
def test_a_stored_event_that_no_longer_decodes_is_named_not_a_bare_500(
    app_client: TestClient, settings: Settings, run_cli: Any, state: bytes
) -> None:
    """Rewritten outside the application, an order's event no longer decodes: its history (and the
    order as of any version) names the event and points to `ugc verify`, over HTTP and in the CLI."""
    api = Api(app_client, settings)
    deal = a_deal(api)
    order = order_in(api, deal, "in_progress")
    [_, accepted] = all_pages(app_client, f"/api/v1/orders/{order}/history/", deal.buyer["headers"])
    _rewrite_stored_state(settings, accepted["position"], state)
    for path in (f"/api/v1/orders/{order}/history/", f"/api/v1/orders/{order}/?as_of=1"):
        answer = app_client.get(path, headers=deal.buyer["headers"])
        assert answer.status_code == 500, answer.text
        detail = answer.json()["detail"]
        assert f"версии 2 (позиция {accepted['position']} журнала orders) не читается" in detail, detail
        assert "ugc verify" in detail
    code, out, err = run_cli("history", "order", str(order))
    assert (code, out) == (1, b"") and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"ugc: history: order {order}: the stored event of version 2 (orders position {accepted['position']})" in err


def _delete_stored_event(settings: Settings, position: int) -> None:
    """As an intruder with the database's files would: the orders log's event at `position` removed."""
    url = settings.database_url
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM orders_events WHERE notification_id = %s", (position,))
    else:
        main = sqlite_path(url)
        with closing(sqlite3.connect(main.with_name(f"{main.stem}.orders{main.suffix}"))) as lite, lite:
            lite.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))


@pytest.mark.parametrize("removed", [1, 2], ids=["placing", "acceptance"])
def test_an_event_removed_from_the_middle_of_an_order_is_named_by_the_order_as_of_not_a_bare_500(
    app_client: TestClient, settings: Settings, run_cli: Any, removed: int
) -> None:
    """An order's event deleted outside the application: its history still shows the events left (the
    gap is the auditor's to see), but the order as of a later version cannot be rebuilt; the answer
    names the first event that does not follow the ones before it, as for an event that does not
    decode, rather than a bare "Внутренняя ошибка сервера." and the CLI's "ugc: history order
    failed: (3, 2)"."""
    api = Api(app_client, settings)
    deal = a_deal(api)
    order = order_in(api, deal, "delivered")
    entries = all_pages(app_client, f"/api/v1/orders/{order}/history/", deal.buyer["headers"])
    _delete_stored_event(settings, entries[removed - 1]["position"])
    left = all_pages(app_client, f"/api/v1/orders/{order}/history/", deal.buyer["headers"])
    assert [entry["version"] for entry in left] == [v for v in (1, 2, 3) if v != removed]
    broken = left[0] if removed == 1 else left[1]  # the first event not preceded by its version's predecessor
    for as_of in ("3", "9999-12-31T23:59:59Z"):
        answer = app_client.get(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], params={"as_of": as_of})
        assert answer.status_code == 500, answer.text
        detail = answer.json()["detail"]
        assert f"версии {broken['version']} (позиция {broken['position']} журнала orders)" in detail, detail
        assert "ugc verify" in detail
    code, out, err = run_cli("history", "order", str(order), "--as-of", "3")
    assert (code, out) == (1, b"") and err.count("\n") == 1 and "Traceback" not in err, err
    assert (
        f"ugc: history: order {order}: the stored event of version {broken['version']} "
        f"(orders position {broken['position']}) does not follow" in err
    ), err
    assert f"version {removed} expected" in err and "ugc verify" in err, err
