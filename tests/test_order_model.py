"""The order lifecycle over HTTP, against a model: a state machine issues random commands by random
callers, with and without preconditions and idempotency keys, and predicts each answer from the rule
table and the documented order of checks.

The model is a dict of order -> status, events (its version is their number), requirements and
whether it was reviewed; what it predicts comes from `ugc.orders.RULES` and README "How it fits
together" ("The checks of who may write come before the version ..."): a body that cannot be read
(422) first, then 404 for a caller the order does not concern, 403 for the wrong party (an auditor,
who sees every order, included), 412 for `If-Match` / `If-None-Match`, 409 for a wrong state, and
the command's 2xx. After every step the touched order as each party reads it, its history, the
parties' order lists and their notifications all agree with the model.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.conftest import Api, version_of
from tests.test_api_orders import grant
from ugc.orders import RULES

# Each command: its method, its path under the order's, its success code, the event it appends.
COMMANDS: dict[str, tuple[str, str, int, str]] = {
    "update": ("PATCH", "", 200, "OrderUpdated"),
    "accept": ("POST", "accept/", 200, "OrderAccepted"),
    "deliver": ("POST", "deliveries/", 201, "WorkDelivered"),
    "request_revision": ("POST", "request-revision/", 200, "RevisionRequested"),
    "approve": ("POST", "approve/", 200, "OrderCompleted"),
    "cancel": ("POST", "cancel/", 200, "OrderCancelled"),
    "review": ("POST", "reviews/", 201, "OrderReviewed"),
}
# A body each command takes (an update's is the requirements a step draws), and one it cannot read.
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "accept": {},
    "deliver": {"message": "Готово: https://example.com/v"},
    "request_revision": {"message": "Переделать"},
    "approve": {},
    "cancel": {"reason": "Передумал"},
    "review": {"rating": 4, "content": "Хорошо"},
}
BAD_BODIES: dict[str, dict[str, Any]] = {
    "update": {"requirements": 5},
    "deliver": {"message": " "},
    "request_revision": {"message": ["не текст"]},
    "cancel": {},
    "review": {"rating": 9},
}
REQUIREMENTS = ("Распаковка и обзор", "Обзор без распаковки")
# `If-Match` and `If-None-Match` (see `Call`): mostly neither, so that most commands get past them.
CONDITIONS: list[tuple[str | None, str | None]] = [(None, None)] * 8 + [
    ("current", None),
    ("stale", None),
    ("*", None),
    (None, "*"),
    (None, "current"),
    (None, "other"),
    ("current", "other"),
    ("stale", "*"),
    ("listed", None),
    ("weak", None),
    (None, "listed"),
    (None, "weak"),
]


def tag(condition: str | None, version: int) -> str | None:
    """The header value of a `CONDITIONS` entry for an order at `version`."""
    return {
        None: None,
        "*": "*",
        "current": f'"{version}"',
        "stale": f'"{version - 1 or version + 1}"',
        "other": f'"{version + 5}"',
        "listed": f'"{version + 5}", "{version}"',  # a list naming the current version among others
        "weak": f'W/"{version}.0123456789abcdef"',  # a full tag, weakened by a proxy: its version counts
    }[condition]


def named(header: str) -> set[int]:
    """The versions a precondition's tags name (README: "`If-Match` compares the version alone (the
    number before the dot ...)", "`W/"3.…"` counts as `"3.…"`", a list "of which the current one must
    be one")."""
    tags = (text.strip().removeprefix("W/").strip('"') for text in header.split(","))
    return {int(text.split(".")[0]) for text in tags}


PARTIES = ("buyer", "creator", "outsider", "auditor")


@dataclass
class Modelled:
    """What the model knows of one order."""

    buyer: str  # which of the machine's buyers placed it
    modifiable: bool
    status: str = "pending"
    events: list[str] = field(default_factory=lambda: ["OrderPlaced"])
    statuses: list[str] = field(default_factory=lambda: ["pending"])  # after each event
    requirements: str = REQUIREMENTS[0]
    reviewed: bool = False

    @property
    def version(self) -> int:
        return len(self.events)


@dataclass(frozen=True)
class Call:
    """A command as the machine issues it."""

    command: str
    party: str
    bad_body: bool
    requirements: str
    if_match: str | None  # the header's value, if any
    if_none_match: str | None
    key: str | None  # an Idempotency-Key, if any


def expected(order: Modelled, call: Call, role: str | None) -> int:
    """The status code the model predicts for `call` by a caller in `role` (None: not a party)."""
    if call.bad_body:
        return 422
    if role is None:
        return 404
    rule = RULES[call.command]
    if role == "auditor" or not (role == rule.actor or (rule.actor == "participant" and role in ("buyer", "creator"))):
        return 403
    if call.command == "request_revision" and not order.modifiable:
        return 403
    if call.if_match not in (None, "*") and order.version not in named(call.if_match):
        return 412
    if call.if_none_match == "*" or (call.if_none_match is not None and order.version in named(call.if_none_match)):
        return 412
    if order.status not in rule.sources or (call.command == "review" and order.reviewed):
        return 409
    return COMMANDS[call.command][2]


class OrderLifecycle(RuleBasedStateMachine):
    """One world per example: two buyers, a creator with two services (one allowing revisions), an auditor."""

    def __init__(self, api: Api) -> None:
        super().__init__()
        self.api = api
        creator = api.creator()
        self.users: dict[str, dict[str, Any]] = {
            "first": api.verified_user(),
            "second": api.verified_user(),
            "creator": creator,
            "auditor": grant(api, api.verified_user(), "auditor"),
        }
        self.services = {True: api.service(creator), False: api.service(creator, allows_modifications=False)}
        self.orders: dict[int, Modelled] = {}
        self.notified: Counter[str] = Counter()
        self.touched: int | None = None
        # Each Idempotency-Key sent: its order, its command and the answer it last got.
        self.keyed: dict[str, tuple[int, Call, Any]] = {}

    @staticmethod
    def role(party: str) -> str | None:
        """The role of `party` in its order (the outsider, the buyer who did not place it, has none)."""
        return None if party == "outsider" else party

    def who(self, order: Modelled, party: str) -> str:
        """The machine's user behind `party` of `order`."""
        if party == "buyer":
            return order.buyer
        if party == "outsider":
            return "second" if order.buyer == "first" else "first"
        return party

    @precondition(lambda self: len(self.orders) < 3)
    @rule(buyer=st.sampled_from(["first", "second"]), modifiable=st.booleans())
    def place(self, buyer: str, modifiable: bool) -> None:
        body = {
            "service_id": self.services[modifiable]["id"],
            "requirements": REQUIREMENTS[0],
            "delivery_date": (date.today() + timedelta(days=10)).isoformat(),
        }
        response = self.api.client.post("/api/v1/orders/", headers=self.users[buyer]["headers"], json=body)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "pending" and version_of(response) == 1
        number = response.json()["id"]
        self.orders[number] = Modelled(buyer=buyer, modifiable=modifiable)
        self.notified["creator"] += 1
        self.touched = number

    @precondition(lambda self: bool(self.orders))
    @rule(
        data=st.data(),
        bad_body=st.integers(0, 5).map(lambda n: n == 0),
        requirements=st.sampled_from(REQUIREMENTS),
        conditions=st.sampled_from(CONDITIONS),
        keyed=st.integers(0, 3).map(lambda n: n == 0),
    )
    def command(
        self,
        data: st.DataObject,
        bad_body: bool,
        requirements: str,
        conditions: tuple[str | None, str | None],
        keyed: bool,
    ) -> None:
        number = data.draw(st.sampled_from(sorted(self.orders)), label="order")
        order = self.orders[number]
        # Half the time a command the order's status allows, by the party allowed to issue it, so
        # that examples get past the first steps of the lifecycle rather than be refused throughout.
        allowed = sorted(name for name, rule_ in RULES.items() if name in COMMANDS and order.status in rule_.sources)
        command = data.draw(st.sampled_from(sorted(COMMANDS)) | st.sampled_from(allowed or sorted(COMMANDS)))
        actor = RULES[command].actor
        party = data.draw(
            st.sampled_from(PARTIES) | st.sampled_from(("buyer", "creator") if actor == "participant" else (actor,))
        )
        if_match, if_none_match = (tag(condition, order.version) for condition in conditions)
        key = str(uuid.uuid4()) if keyed else None
        call = Call(command, party, bad_body and command in BAD_BODIES, requirements, if_match, if_none_match, key)
        self.issue(number, call)

    @precondition(lambda self: bool(self.keyed))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """Send a command with an Idempotency-Key again, as it was: a 2xx or a 409 is replayed as first
        answered, and changes nothing; any other refusal lets the key go, and the retry runs afresh (README,
        "A key keeps the answer of a command decided on the state its caller saw: a 2xx, and a 409 ...
        A refusal that decided nothing lets the key go")."""
        key = data.draw(st.sampled_from(sorted(self.keyed)), label="key")
        number, call, first = self.keyed[key]
        if first.status_code < 300 or first.status_code == 409:
            again = self.send(number, call)
            assert (again.status_code, again.json()) == (first.status_code, first.json()), again.text
            event(f"replayed {call.command} {first.status_code}")
            self.touched = number
        else:
            self.issue(number, call)

    def issue(self, number: int, call: Call) -> None:
        """Send `call` and hold its answer, and the order after it, to the model."""
        order = self.orders[number]
        want = expected(order, call, self.role(call.party))
        response = self.send(number, call)
        assert response.status_code == want, (call, order, response.text)
        event(f"{call.command} {want}")
        if call.key is not None:
            self.keyed[call.key] = (number, call, response)
        self.touched = number
        if want == 412:
            assert response.json()["version"] == order.version and response.headers["etag"] == f'"{order.version}"'
        elif want == 409:  # a wrong status names the current one; a second review is a conflict without one
            wrong_state = order.status not in RULES[call.command].sources
            assert response.json().get("status") == (order.status if wrong_state else None), response.text
        elif want < 300:
            self.apply(number, order, call, response)

    def send(self, number: int, call: Call) -> Any:
        method, path, _, _ = COMMANDS[call.command]
        headers = dict(self.users[self.who(self.orders[number], call.party)]["headers"])
        if call.if_match is not None:
            headers["If-Match"] = call.if_match
        if call.if_none_match is not None:
            headers["If-None-Match"] = call.if_none_match
        if call.key is not None:
            headers["Idempotency-Key"] = call.key
        if call.bad_body:
            body: Any = BAD_BODIES[call.command]
        elif call.command == "update":
            body = {"requirements": call.requirements}
        else:
            body = GOOD_BODIES[call.command]
        return self.api.client.request(method, f"/api/v1/orders/{number}/{path}", headers=headers, json=body)

    def apply(self, number: int, order: Modelled, call: Call, response: Any) -> None:
        """The model's side of a command that succeeded."""
        rule_ = RULES[call.command]
        appends = not (call.command == "update" and call.requirements == order.requirements)
        if call.command == "update":
            order.requirements = call.requirements
        if call.command == "review":
            order.reviewed = True
        if rule_.target is not None:
            order.status = rule_.target
        if appends:
            order.events.append(COMMANDS[call.command][3])
            order.statuses.append(order.status)
            # Whoever acted notifies the other party.
            self.notified["creator" if call.party == "buyer" else order.buyer] += 1
        if "etag" in response.headers:
            assert version_of(response) == order.version, response.headers["etag"]
        if call.command == "update":
            assert response.json()["requirements"] == order.requirements
        elif call.command not in ("deliver", "review"):
            assert response.json()["status"] == order.status and response.json()["id"] == number

    # Invariants -------------------------------------------------------------------------------

    @invariant()
    def each_party_reads_the_touched_order_as_modelled(self) -> None:
        if self.touched is None:
            return
        order = self.orders[self.touched]
        for party in PARTIES:
            user = self.who(order, party)
            response = self.api.client.get(f"/api/v1/orders/{self.touched}/", headers=self.users[user]["headers"])
            if party == "outsider":
                assert response.status_code == 404, response.text
                continue
            assert response.status_code == 200, (party, response.text)
            shown = response.json()
            assert (shown["status"], version_of(response)) == (order.status, order.version), (party, order)
            assert shown["requirements"] == order.requirements
            again = self.api.client.get(
                f"/api/v1/orders/{self.touched}/",
                headers=self.users[user]["headers"] | {"If-None-Match": response.headers["etag"]},
            )
            assert (again.status_code, again.headers["etag"]) == (304, response.headers["etag"]), party

    @invariant()
    def the_history_has_one_entry_per_event_and_tells_the_past(self) -> None:
        if self.touched is None:
            return
        order = self.orders[self.touched]
        response = self.api.client.get(
            f"/api/v1/orders/{self.touched}/history/?page_size=100", headers=self.users["auditor"]["headers"]
        )
        assert response.status_code == 200, response.text
        history = response.json()
        assert history["count"] == order.version
        assert [entry["type"] for entry in history["results"]] == order.events
        assert [entry["version"] for entry in history["results"]] == list(range(1, order.version + 1))
        # The order as it was one event ago, rebuilt from its log.
        then = max(1, order.version - 1)
        response = self.api.client.get(
            f"/api/v1/orders/{self.touched}/?as_of={then}", headers=self.users["creator"]["headers"]
        )
        assert response.status_code == 200, response.text
        assert (response.json()["status"], version_of(response)) == (order.statuses[then - 1], then)

    @invariant()
    def the_lists_count_what_the_model_holds(self) -> None:
        if self.touched is None:
            return
        for user, role in (("first", "buyer"), ("second", "buyer"), ("creator", "creator")):
            mine = [o for o in self.orders.values() if role == "creator" or o.buyer == user]
            listed = self.api.client.get(
                f"/api/v1/orders/?role={role}&page_size=100", headers=self.users[user]["headers"]
            ).json()
            assert listed["count"] == len(mine)
            assert Counter(o["status"] for o in listed["results"]) == Counter(o.status for o in mine), (user, role)
            status = self.orders[self.touched].status
            filtered = self.api.client.get(
                f"/api/v1/orders/?role={role}&status={status}", headers=self.users[user]["headers"]
            ).json()
            assert filtered["count"] == sum(o.status == status for o in mine), (user, role, status)
        # An auditor lists every order, here narrowed to the world's creator (README, "An auditor's
        # `GET /api/v1/orders/` lists every order ... filtered by `buyer` and `creator`").
        creator = self.users["creator"]["id"]
        audited = self.api.client.get(
            f"/api/v1/orders/?creator={creator}&page_size=100", headers=self.users["auditor"]["headers"]
        ).json()
        assert sorted(o["id"] for o in audited["results"]) == sorted(self.orders)
        assert {o["id"]: o["status"] for o in audited["results"]} == {n: o.status for n, o in self.orders.items()}

    @invariant()
    def each_party_was_notified_of_the_other_ones_commands(self) -> None:
        for user in ("first", "second", "creator"):
            listed = self.api.client.get("/api/v1/notifications/", headers=self.users[user]["headers"]).json()
            assert listed["count"] == self.notified[user], user


# Each example makes its world (four users, two services: ~0.3 s) and walks up to 30 steps.
LIFECYCLE_SETTINGS = settings(
    max_examples=5,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_order_lifecycle_follows_its_model(api: Api) -> None:
    class OnThisApi(OrderLifecycle):  # hypothesis makes the machine of a class that takes no argument
        def __init__(self) -> None:
            super().__init__(api)

    run_state_machine_as_test(OnThisApi, settings=LIFECYCLE_SETTINGS)
