"""Golden events: stored payloads of every event type and class version, kept as fixtures.

`python -m tests.golden_events` runs `scenario` (every kind of event the product records, through
the HTTP API, the scheduler and the operator's commands) on a scratch SQLite database, then writes
under `tests/fixtures/events/`:

- `<topic>/v<class_version>.json`: the first stored payload of each event type and version that has
  no fixture yet. An existing fixture is never rewritten: it is what the log holds forever.
- `fingerprints.json`: the fields (name and annotation) of each event class at each version, added
  for versions not recorded yet; a class whose fields change without a new `class_version` then no
  longer matches its record (tests/test_event_versions.py).
- `log-v<N>.json` when `--log N` is given: the scenario's whole log, application by application, as
  stored; `tests/test_event_versions.py` loads such a log into a fresh store with the current code.

Run it after giving an event class a new `class_version`, and commit what it adds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from commands.scheduler import AutoCompleter
from readmodels.orders import due_for_auto_completion
from readmodels.waiting import wait_for
from tests.backends import environment
from tests.conftest import Api, new_client
from tests.orders_world import Deal, a_deal, act, order_in, place
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.events import STORED, operator_actor
from ugc.platform.store import EventStores

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"
FINGERPRINTS = FIXTURES / "fingerprints.json"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64


def stored_log(stores: EventStores) -> dict[str, list[dict[str, Any]]]:
    """Every stored event of every application, in log order, its state as the JSON object it is."""
    log: dict[str, list[dict[str, Any]]] = {}
    for name, app in stores.applications.items():
        head = app.recorder.max_notification_id() or 0
        log[name] = [
            {
                "originator_id": str(n.originator_id),
                "originator_version": n.originator_version,
                "topic": n.topic,
                "state": json.loads(n.state),
            }
            for n in app.recorder.select_notifications(start=1, limit=head + 1)
        ]
    return log


def fingerprint(event_class: type) -> dict[str, str]:
    """The event's fields, in order, with their annotations as written."""
    return {field.name: str(field.type) for field in dataclasses.fields(event_class)}


def recorded_fingerprints() -> dict[str, dict[str, dict[str, str]]]:
    """topic -> class version -> fields, as recorded when that version was made."""
    recorded: dict[str, dict[str, dict[str, str]]] = json.loads(FINGERPRINTS.read_text())
    return recorded


def fixture_path(topic: str, class_version: int) -> Path:
    return FIXTURES / topic / f"v{class_version}.json"


def payloads(log: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(topic, class version, stored event) for the first event of each type and version in `log`."""
    seen: set[tuple[str, int]] = set()
    for events in log.values():
        for stored in events:
            key = (stored["topic"], int(stored["state"].get("class_version", 1)))
            if key not in seen:
                seen.add(key)
                yield *key, stored


def scenario(api: Api, clock: MovableClock) -> None:
    """One of every event: accounts, catalog, creators, files, messaging, notifications, orders, portfolio."""
    services = api.client.app.state.services  # type: ignore[attr-defined]
    boss = api.verified_user(username="golden_boss")
    operator = operator_actor("golden")
    services.accounts.grant_role(boss["username"], "admin", operator)
    services.accounts.grant_role(boss["username"], "auditor", operator)
    services.accounts.revoke_role(boss["username"], "auditor", operator)
    services.accounts.erase(api.verified_user(username="golden_gone")["username"], operator)
    services.accounts.erase(api.creator(username="golden_gone_creator")["username"], operator)
    _ok(api.client.post("/api/auth/resend-verification/", headers=api.user(username="golden_again")["headers"]))
    skill = _ok(api.client.post("/api/skills/", headers=boss["headers"], json={"name": "Golden Blender"}))
    path = f"/api/skills/{skill['id']}/"
    _ok(api.client.patch(path, headers=boss["headers"], json={"name": "Golden Maya", "description": "3D"}))
    _ok(api.client.patch(path, headers=boss["headers"], json={"name": "Golden Blender"}))  # takes its claim back

    deal = a_deal(api)
    creator, buyer = deal.creator, deal.buyer
    _ok(api.client.patch("/api/v1/users/me/", headers=buyer["headers"], json={"bio": "Покупаю обзоры"}))
    _ok(api.client.patch("/api/v1/users/me/creator-profile/", headers=creator["headers"], json={"experience": "5 лет"}))
    service = f"/api/v1/services/{deal.service['id']}/"
    _ok(api.client.patch(service, headers=creator["headers"], json={"title": "Золотой обзор"}))

    mine = _ok(
        api.client.post("/api/creator-skills/", headers=creator["headers"], json={"skill": skill["id"], "level": 2})
    )
    _ok(api.client.patch(f"/api/creator-skills/{mine['id']}/", headers=creator["headers"], json={"level": 4}))
    _ok(api.client.delete(f"/api/creator-skills/{mine['id']}/", headers=creator["headers"]))
    _ok(api.client.post("/api/creator-skills/", headers=creator["headers"], json={"skill": skill["id"], "level": 3}))

    kept = _ok(
        api.client.post(
            "/api/v1/files/upload/", headers=creator["headers"], files={"file": ("a.txt", b"ok", "text/plain")}
        )
    )
    dropped = _ok(
        api.client.post(
            "/api/v1/files/upload/", headers=buyer["headers"], files={"file": ("b.txt", b"x", "text/plain")}
        )
    )
    _ok(api.client.delete(f"/api/v1/files/{dropped['id']}/", headers=buyer["headers"]))

    item = _ok(
        api.client.post(
            "/api/portfolio/",
            headers=creator["headers"],
            data={"title": "Обзор", "description": "Лучший"},
            files={"cover_image": ("c.png", PNG, "image/png")},
        )
    )
    _ok(api.client.patch(f"/api/portfolio/{item['id']}/", headers=creator["headers"], json={"title": "Обзор 2"}))
    image = _ok(
        api.client.post(
            "/api/portfolio-images/",
            headers=creator["headers"],
            data={"portfolio_item": str(item["id"]), "caption": "Кадр"},
            files={"image": ("i.png", PNG, "image/png")},
        )
    )
    _ok(api.client.patch(f"/api/portfolio-images/{image['id']}/", headers=creator["headers"], json={"order": 2}))
    _ok(api.client.delete(f"/api/portfolio-images/{image['id']}/", headers=creator["headers"]))
    _ok(api.client.delete(f"/api/portfolio/{item['id']}/", headers=creator["headers"]))

    _orders(api, deal, kept["id"])
    conversation = _ok(
        api.client.post("/api/v1/conversations/", headers=buyer["headers"], json={"recipient_id": creator["id"]})
    )
    talk = f"/api/v1/conversations/{conversation['id']}/"
    _ok(api.client.post(f"{talk}messages/", headers=buyer["headers"], json={"message": "Здравствуйте!"}))
    _ok(api.client.post(f"{talk}mark-as-read/", headers=creator["headers"]))
    wait_for(services.db, services.progress, services.orders.stores.heads(), 5.0)
    inbox = _ok(api.client.get("/api/v1/notifications/", headers=creator["headers"]))["results"]
    _ok(api.client.post(f"/api/v1/notifications/{inbox[0]['id']}/mark-as-read/", headers=creator["headers"]))
    _ok(api.client.post("/api/v1/notifications/mark-all-read/", headers=creator["headers"]))
    _ok(api.client.delete(service, headers=creator["headers"]))
    clock.advance(timedelta(days=30))  # the last step: the parties' tokens expire
    completer = AutoCompleter(services.orders, clock, lambda before: due_for_auto_completion(services.db, before))
    assert completer.run_once() == 1


def _orders(api: Api, deal: Deal, file: int) -> None:
    """Order events: a lifecycle with an update, a revision and a review; a cancel; one left delivered."""
    order = place(api, deal)["id"]
    later = (date.today() + timedelta(days=20)).isoformat()
    _ok(api.client.patch(f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"delivery_date": later}))
    act(api, deal.creator, order, "accept")
    act(api, deal.creator, order, "deliveries", {"message": "Готово", "file_ids": [file]}, expect=201)
    act(api, deal.buyer, order, "request-revision", {"message": "Поправьте звук"})
    act(api, deal.creator, order, "deliveries", {"message": "Исправил"}, expect=201)
    act(api, deal.buyer, order, "approve")
    act(api, deal.buyer, order, "reviews", {"rating": 5, "content": "Отлично"}, expect=201)
    act(api, deal.creator, order_in(api, deal, "pending"), "cancel", {"reason": "Занят"})
    order_in(api, deal, "delivered")


def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201, 204), response.text
    return response.json() if response.content else None


def capture(var_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The log `scenario` writes on a fresh SQLite database in `var_dir`."""
    url = f"sqlite:///{var_dir / 'ugc.sqlite3'}"
    settings = Settings.from_env(environment("sqlite", url, var_dir))
    clock = MovableClock()
    with new_client(settings, clock) as client:
        scenario(Api(client, settings), clock)
        return stored_log(client.app.state.services.orders.stores)  # type: ignore[attr-defined]


def write(log: dict[str, list[dict[str, Any]]], log_version: int | None) -> list[Path]:
    written = []
    for topic, class_version, stored in payloads(log):
        path = fixture_path(topic, class_version)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stored, ensure_ascii=False, indent=1) + "\n")
            written.append(path)
    recorded = recorded_fingerprints() if FINGERPRINTS.exists() else {}
    for topic, event_class in sorted(STORED.items()):
        version = str(getattr(event_class, "class_version", 1))
        if version not in recorded.setdefault(topic, {}):
            recorded[topic][version] = fingerprint(event_class)
    FINGERPRINTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    if log_version is not None:
        path = FIXTURES / f"log-v{log_version}.json"
        path.write_text(json.dumps(log, ensure_ascii=False, indent=1) + "\n")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--log", type=int, metavar="N", help="also write the whole log as log-vN.json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for path in write(capture(Path(scratch)), options.log):
            print(path.relative_to(FIXTURES.parent.parent.parent))


if __name__ == "__main__":
    main()
