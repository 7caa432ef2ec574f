"""Personal data is sealed per person in the log, and erasing a person destroys their keys (both backends).

The app runs in-process with its projections; `ugc users erase` runs as the operator would, in a
process of its own on the same database and UGC_DATA_KEY (the module's var dir).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import AggregateNotFoundError
from starlette.websockets import WebSocketDisconnect

from api.routes.ws import EXPIRY_CHECK
from commands.accounts import EMAIL_DIGEST
from commands.creators import CreatorCommands
from commands.standing import KEPT_FOR
from projections.mail import Mailer
from projections.verification_mail import VerificationMailProjection
from readmodels.users import get_user
from tests.backends import DATA_KEY, environment, fresh_database
from tests.conftest import Api
from tests.orders_world import Deal, a_deal, place
from tests.servers import run_ugc
from ugc.accounts import User, VerificationToken
from ugc.claims import Claim
from ugc.cli import users as users_cli
from ugc.clock import MovableClock
from ugc.config import Settings, sqlite_path
from ugc.creator_skills import CreatorSkill, creator_skill_id
from ugc.events import operator_actor
from ugc.ids import aggregate_id, claim_id, normalise
from ugc.personal import subjects_of
from ugc.platform.database import Database
from ugc.platform.erasure_journal import record_erasure
from ugc.platform.personal_data import DataKeys, PersonalDataError, PersonErased
from ugc.platform.store import EventStores, eventsourcing_settings
from ugc.portfolio import PortfolioItem, portfolio_item_id
from ugc.services import Service, service_id

PHONE = "+79991234567"
BIO = "Живу в Казани, снимаю котов"
LINK = "https://portfolio.example/sekretova"
SOCIAL = "https://t.me/sekretova_private"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64


@pytest.fixture
def stores(settings: Settings) -> Iterator[EventStores]:
    opened = EventStores(settings.database_url, data_key=settings.data_key)
    yield opened
    opened.close()


def ugc(settings: Settings, backend: str, *args: str) -> Any:
    return run_ugc(environment(backend, settings.database_url, settings.var_dir), *args)


def a_person(api: Api) -> dict[str, Any]:
    """A creator with every personal field filled: e-mail, names, phone, bio and a creator profile."""
    name = f"sekretova_{time.monotonic_ns() % 10**9}"
    person = api.creator(username=name, email=f"{name}@hidden.example", first_name="Секретина", last_name="Тайнова")
    me = api.client.patch("/api/v1/users/me/", headers=person["headers"], json={"phone": PHONE, "bio": BIO})
    assert me.status_code == 200, me.text
    profile = api.client.patch(
        "/api/v1/users/me/creator-profile/",
        headers=person["headers"],
        json={"portfolio_link": f"{LINK}/{name}", "social_links": {"telegram": f"{SOCIAL}_{name}"}},
    )
    assert profile.status_code == 200, profile.text
    return person


def secrets_of(person: dict[str, Any]) -> list[str]:
    return [person["email"], "Секретина", "Тайнова", PHONE, BIO, LINK, SOCIAL]  # LINK, SOCIAL: prefixes


def accounts_log(stores: EventStores) -> list[bytes]:
    head = stores.heads(["accounts"])["accounts"]
    return [event.state for event in stores.recorded_range("accounts", 1, head, limit=head)]


def eventually(check: Any, timeout: float = 10.0) -> Any:
    """`check()` once it is truthy: the inline projections apply another process's events within moments."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "the read side never showed it"
        time.sleep(0.05)
    return found


def test_the_log_holds_no_personal_field_in_the_clear_and_the_api_shows_them(api: Api, stores: EventStores) -> None:
    person = a_person(api)
    log = accounts_log(stores)
    for secret in secrets_of(person):
        assert not [state for state in log if secret.encode() in state], f"{secret!r} is in the log in the clear"
    assert person["username"].encode() in b"".join(log)  # the username stays readable: others' records show it
    # The address is claimed by a keyed digest: the log cannot confirm a guessed address without UGC_DATA_KEY.
    with pytest.raises(AggregateNotFoundError):
        stores.accounts.repository.get(claim_id("email", person["email"]))
    digest = stores.data_keys.blind_index(normalise(person["email"])) if stores.data_keys else ""
    claim: Claim = stores.accounts.repository.get(claim_id(EMAIL_DIGEST, digest))
    assert claim.owner_number == person["id"] and claim.value == digest

    me = api.client.get("/api/v1/users/me/", headers=person["headers"]).json()
    assert (me["email"], me["first_name"], me["last_name"], me["phone"], me["bio"]) == (
        person["email"],
        "Секретина",
        "Тайнова",
        PHONE,
        BIO,
    )
    user: User = stores.accounts.repository.get(aggregate_id("user", person["id"]))
    assert (user.email, user.phone) == (person["email"], PHONE)  # the write side reads them too


def test_erasing_a_person_blanks_them_everywhere_ends_their_sessions_and_keeps_the_orders(
    api: Api, backend: str, settings: Settings, stores: EventStores, db: Database, clock: MovableClock
) -> None:
    person = a_person(api)
    deal = a_deal(api)
    order = place(api, Deal(creator=deal.creator, buyer=person, service=deal.service))["id"]

    done = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert done.returncode == 0, done.stderr
    assert f"{person['username']} (id {person['id']}) erased" in done.stdout

    # The read side blanks every personal field, the creator profile's too; the username stays.
    row = eventually(lambda: (r := get_user(db, person["id"])) is not None and r["email"] == "" and r)
    assert (row["username"], row["first_name"], row["last_name"], row["phone"], row["bio"]) == (
        person["username"],
        "",
        "",
        "",
        "",
    )
    profile = api.client.get(f"/api/v1/creators/{person['profile']['id']}/").json()
    assert (profile["portfolio_link"], profile["social_links"], profile["specialization"]) == ("", {}, "")

    # The log reads them as erased now: the keys are gone, not the bytes.
    user: User = stores.accounts.repository.get(aggregate_id("user", person["id"]))
    assert (user.erased, user.email, user.first_name, user.phone, user.bio) == (True, "", "", "", "")
    log = accounts_log(stores)
    assert any(b'"sealed":' in state for state in log)

    # No way back in: the password, the refresh token, and (once its standing is asked again) the access token.
    signed_in = api.client.post(
        "/api/auth/token/", json={"username": person["username"], "password": person["password"]}
    )
    assert signed_in.status_code == 401
    refreshed = api.client.post("/api/auth/token/refresh/", json={"refresh": person["refresh"]})
    assert refreshed.status_code == 401
    # Within the time a server keeps a standing, a change by the old token finds the account gone.
    for path, change in (
        ("/api/v1/users/me/", {"bio": "снова"}),
        ("/api/v1/users/me/creator-profile/", {"experience": "1"}),
    ):
        answer = api.client.patch(path, headers=person["headers"], json=change)
        assert (answer.status_code, answer.json()) == (401, {"detail": "Токен недействителен или просрочен."}), path
    clock.advance(KEPT_FOR + timedelta(seconds=1))
    assert api.client.get("/api/v1/users/me/", headers=person["headers"]).status_code == 401

    # The order stays, for the other party and auditors, under the person's id and username.
    seen = api.client.get(f"/api/v1/orders/{order}/", headers=deal.creator["headers"])
    assert seen.status_code == 200
    assert seen.json()["buyer"] == {"id": person["id"], "username": person["username"]}
    history = api.client.get(f"/api/v1/orders/{order}/history/", headers=deal.creator["headers"]).json()
    assert history["results"][0]["actor"]["username"] == person["username"]

    # The chains still hold and every read table equals a replay of the log as it now reads.
    verified = ugc(settings, backend, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["findings"] == []

    # The address stays claimed, in any case: a new account cannot take over the erased one's name or e-mail.
    again = api.client.post(
        "/api/auth/register/",
        json={"username": "someone_new_x", "email": person["email"].upper(), "password": "correct-horse-battery"}
        | {"first_name": "", "last_name": ""},
    )
    assert again.status_code == 409 and again.json() == {"error": "Пользователь с таким email уже существует."}


def test_a_person_whose_erasure_was_cut_short_once_their_keys_were_destroyed_is_signed_in_nowhere(
    api: Api, backend: str, settings: Settings, stores: EventStores, clock: MovableClock
) -> None:
    """`ugc users erase` destroys the keys first, then stores `User.Erased`: one killed in between left
    the person signing in (200), refreshing and served on their token, their e-mail and names shown
    by `users/me`, until an operator erased again."""
    person = api.verified_user()
    keys = stores.data_keys
    assert keys is not None
    keys.destroy(person["id"], subjects_of(person["id"]), clock.now())  # the erasure's first step, alone

    signed_in = api.client.post(
        "/api/auth/token/", json={"username": person["username"], "password": person["password"]}
    )
    assert (signed_in.status_code, signed_in.json()) == (401, {"detail": "Неверное имя пользователя или пароль."})
    refreshed = api.client.post("/api/auth/token/refresh/", json={"refresh": person["refresh"]})
    assert (refreshed.status_code, refreshed.json()) == (401, {"detail": "Токен недействителен или просрочен."})
    clock.advance(KEPT_FOR + timedelta(seconds=1))  # the standing kept from before is read again
    me = api.client.get("/api/v1/users/me/", headers=person["headers"])
    assert (me.status_code, me.json()) == (401, {"detail": "Токен недействителен или просрочен."})

    finished = ugc(settings, backend, "users", "erase", person["username"], "--yes")  # as `ugc verify` asks
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_an_erased_creator_is_no_counterparty_their_services_withdrawn_and_no_conversation_started(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    deal = a_deal(api)
    second = api.service(deal.creator, title="Второй обзор")
    withdrawn_before = api.service(deal.creator, title="Снят самим креатором")
    gone = api.client.delete(f"/api/v1/services/{withdrawn_before['id']}/", headers=deal.creator["headers"])
    assert gone.status_code == 204
    other = a_deal(api)  # another creator's service stays
    mine = {deal.service["id"], second["id"]}

    def listed() -> set[int]:
        found = api.client.get("/api/v1/services/", params={"page_size": 100, "creator": deal.creator["profile"]["id"]})
        assert found.status_code == 200, found.text
        return {service["id"] for service in found.json()["results"]}

    assert listed() == mine

    done = ugc(settings, backend, "users", "erase", deal.creator["username"], "--yes")
    assert done.returncode == 0, done.stderr
    assert "2 service(s) withdrawn" in done.stdout

    eventually(lambda: not listed())
    for number in mine:  # as the creator's own DELETE: deactivated, by the operator
        *_, last = stores.catalog.repository.event_store.get(service_id(number))
        assert isinstance(last, Service.Deactivated) and last.actor.startswith("operator:"), last
    ordered = api.client.post(
        "/api/v1/orders/",
        headers=deal.buyer["headers"],
        json={"service_id": deal.service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()},
    )
    assert (ordered.status_code, ordered.json()["fields"]) == (422, {"service_id": ["Сервис недоступен для заказа."]})
    place(api, other)  # the others' go on

    # Nobody starts a conversation with them: as for a recipient that does not exist.
    chat = api.client.post(
        "/api/v1/conversations/", headers=deal.buyer["headers"], json={"recipient_id": deal.creator["id"]}
    )
    assert (chat.status_code, chat.json()["fields"]) == (422, {"recipient_id": ["Пользователь не найден."]})

    # Nor do they, with a token whose standing the server still keeps: no new service, no conversation.
    body = {"title": "Новый", "description": "После стирания", "category_id": deal.service["category_id"]}
    offered = api.client.post(
        "/api/v1/services/", headers=deal.creator["headers"], json=body | {"base_price": 100, "delivery_time": 3}
    )
    started = api.client.post(
        "/api/v1/conversations/", headers=deal.creator["headers"], json={"recipient_id": other.buyer["id"]}
    )
    for refused in (offered, started):
        assert (refused.status_code, refused.json()) == (401, {"detail": "Токен недействителен или просрочен."})

    again = ugc(settings, backend, "users", "erase", deal.creator["username"], "--yes")
    assert again.returncode == 0 and "0 service(s) withdrawn" in again.stdout, again.stderr


def a_portfolio(api: Api, creator: dict[str, Any], title: str) -> dict[str, Any]:
    """An item of `creator`'s portfolio with one image added to it, as the API shows it."""
    item = api.client.post(
        "/api/portfolio/",
        headers=creator["headers"],
        data={"title": title, "description": f"{title}: мои слова"},
        files={"cover_image": ("cover.png", PNG, "image/png")},
    )
    assert item.status_code == 201, item.text
    image = api.client.post(
        "/api/portfolio-images/",
        headers=creator["headers"],
        data={"portfolio_item": str(item.json()["id"]), "caption": "Моё фото", "order": "1"},
        files={"image": ("photo.png", PNG, "image/png")},
    )
    assert image.status_code == 201, image.text
    shown = api.client.get(f"/api/portfolio/{item.json()['id']}/")
    assert shown.status_code == 200 and len(shown.json()["images"]) == 1, shown.text
    body: dict[str, Any] = shown.json()
    return body


def portfolio_seen(api: Api, item: dict[str, Any], viewer: dict[str, Any]) -> dict[str, int]:
    """Status of each public way to the item: its page, its place in its creator's list, in their
    profile's detail and in the images' list, and its cover's and image's bytes."""
    listed = api.client.get("/api/portfolio/", params={"creator_profile_id": item["creator_profile"]})
    profile = api.client.get(f"/api/v1/creators/{item['creator_profile']}/", params={"detail": "true"})
    images = api.client.get(
        "/api/portfolio-images/", headers=viewer["headers"], params={"portfolio_item_id": item["id"]}
    )
    public = api.settings.public_url
    return {
        "item": api.client.get(f"/api/portfolio/{item['id']}/").status_code,
        "listed": sum(row["id"] == item["id"] for row in listed.json()["results"]),
        "in profile": sum(row["id"] == item["id"] for row in profile.json()["portfolio"]),
        "images listed": images.json()["count"],
        "cover": api.client.get(item["cover_image"].removeprefix(public)).status_code,
        "image": api.client.get(item["images"][0]["image"].removeprefix(public)).status_code,
    }


SHOWN = {"item": 200, "listed": 1, "in profile": 1, "images listed": 1, "cover": 200, "image": 200}
GONE = {"item": 404, "listed": 0, "in profile": 0, "images listed": 0, "cover": 404, "image": 404}


def test_an_erased_creators_portfolio_is_withdrawn_with_its_images_and_a_replay_agrees(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    """The portfolio is the person's own words and pictures: the erasure deletes each item (its images
    with it) as the creator's own DELETE would, by the operator, so no public page, list or media URL
    shows them, and the read models equal a replay of the log."""
    person, other, viewer = a_person(api), api.creator(), api.verified_user()
    theirs = [a_portfolio(api, person, "Логотип"), a_portfolio(api, person, "Сайт")]
    kept = a_portfolio(api, other, "Чужой")
    for item in (*theirs, kept):
        assert portfolio_seen(api, item, viewer) == SHOWN

    done = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert done.returncode == 0, done.stderr
    assert "2 portfolio item(s) withdrawn" in done.stdout, done.stdout

    for item in theirs:
        assert portfolio_seen(api, item, viewer) == GONE
        *_, last = stores.catalog.repository.event_store.get(portfolio_item_id(item["id"]))
        assert isinstance(last, PortfolioItem.Deleted) and last.actor.startswith("operator:"), last
    assert portfolio_seen(api, kept, viewer) == SHOWN  # another creator's stays
    assert api.client.get("/api/portfolio/", headers=person["headers"]).status_code == 401

    # With a token whose standing the server still keeps: no new item of theirs.
    again = api.client.post(
        "/api/portfolio/",
        headers=person["headers"],
        data={"title": "После", "description": "стирания"},
        files={"cover_image": ("cover.png", PNG, "image/png")},
    )
    assert (again.status_code, again.json()) == (401, {"detail": "Токен недействителен или просрочен."})

    verified = ugc(settings, backend, "verify", "--json")  # every read table equals a replay of the log
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["findings"] == []
    second = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert second.returncode == 0 and "0 portfolio item(s) withdrawn" in second.stdout, second.stderr


def test_a_cached_image_of_an_erased_creator_revalidates_to_404(api: Api, backend: str, settings: Settings) -> None:
    """A shared cache must ask again before serving a public image (`no-cache`): the same conditional
    request that was 304 before the erasure is 404 after it, where a max-age let the cache serve the
    erased person's pictures for an hour."""
    person = a_person(api)
    item = a_portfolio(api, person, "Кэш")
    cached = {}
    for url in (item["cover_image"], item["images"][0]["image"]):
        path = url.removeprefix(api.settings.public_url)
        first = api.client.get(path)
        assert (first.status_code, first.headers["cache-control"]) == (200, "public, no-cache"), url
        cached[path] = {"If-None-Match": first.headers["etag"], "If-Modified-Since": first.headers["last-modified"]}
        assert api.client.get(path, headers=cached[path]).status_code == 304

    done = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert done.returncode == 0, done.stderr
    for path, validators in cached.items():
        revalidated = api.client.get(path, headers=validators)
        assert (revalidated.status_code, revalidated.json()) == (404, {"detail": "Страница не найдена."}), path


def erased_as_before(person: dict[str, Any], settings: Settings, stores: EventStores) -> None:
    """`person` erased as a release before the journal's replay finished erasures: the keys destroyed,
    `User.Erased` stored and the journal's line written, nothing else."""
    now = datetime.now(UTC)
    assert stores.data_keys is not None
    stores.data_keys.destroy(person["id"], subjects_of(person["id"]), now)
    user: User = stores.accounts.repository.get(aggregate_id("user", person["id"]))
    user.erase(now, operator_actor("tester"))
    stores.accounts.save(user)
    record_erasure(settings.audit_dir, settings.audit_key, person["id"], person["username"], now)


def test_replaying_the_journal_withdraws_the_portfolio_of_a_creator_erased_before_it_was(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    """Erased as before this release (keys destroyed, `User.Erased`): `--replay` finishes the erasure."""
    person, viewer = a_person(api), api.verified_user()
    item = a_portfolio(api, person, "Старое")
    erased_as_before(person, settings, stores)
    assert portfolio_seen(api, item, viewer) == SHOWN

    replayed = ugc(settings, backend, "users", "erase", "--replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "1 portfolio item(s) withdrawn" in replayed.stdout, replayed.stdout
    assert portfolio_seen(api, item, viewer) == GONE


def with_skills(api: Api, creator: dict[str, Any], levels: dict[int, int]) -> list[int]:
    """`creator`'s skills added at these levels (skill id: level); their creator-skill ids."""
    added = []
    for skill, level in levels.items():
        answer = api.client.post(
            "/api/creator-skills/", headers=creator["headers"], json={"skill": skill, "level": level}
        )
        assert answer.status_code == 201, answer.text
        added.append(answer.json()["id"])
    return added


def skills_seen(api: Api, profile: int, viewer: dict[str, Any]) -> dict[str, int]:
    """How many skills of creator profile `profile` each listing shows: its filtered list, the whole
    list, and the creator's detailed page."""
    every = api.client.get("/api/creator-skills/", headers=viewer["headers"], params={"page_size": 100})
    pages, rows = every.json(), list(every.json()["results"])
    while pages["next"]:
        pages = api.client.get(pages["next"], headers=viewer["headers"]).json()
        rows += pages["results"]
    filtered = api.client.get("/api/creator-skills/", headers=viewer["headers"], params={"creator_profile_id": profile})
    detail = api.client.get(f"/api/v1/creators/{profile}/", params={"detail": "true"})
    return {
        "listed": filtered.json()["count"],
        "in the whole list": sum(row["creator_profile"] == profile for row in rows),
        "in profile": len(detail.json()["skills"]),
    }


def some_skills(api: Api, n: int) -> list[int]:
    found = api.client.get("/api/skills/", params={"page_size": n}).json()["results"]
    assert len(found) == n, found
    return [skill["id"] for skill in found]


def test_an_erased_creators_skills_are_withdrawn_and_a_replay_agrees(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    """A person erased appears with skills in no listing: the erasure removes each as the creator's own
    DELETE would, by the operator (one removed before stays as it was), and the read models equal a
    replay of the log."""
    person, other, viewer = a_person(api), api.creator(), api.verified_user()
    first, second, third = some_skills(api, 3)
    theirs = with_skills(api, person, {first: 4, second: 5, third: 2})
    removed = api.client.delete(f"/api/creator-skills/{theirs[2]}/", headers=person["headers"])
    assert removed.status_code == 204, removed.text
    with_skills(api, other, {first: 3})
    shown = {"listed": 2, "in the whole list": 2, "in profile": 2}
    assert skills_seen(api, person["profile"]["id"], viewer) == shown

    done = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert done.returncode == 0, done.stderr
    assert "2 creator skill(s) withdrawn" in done.stdout, done.stdout

    gone = {"listed": 0, "in the whole list": 0, "in profile": 0}
    assert skills_seen(api, person["profile"]["id"], viewer) == gone
    for number in theirs[:2]:
        *_, last = stores.catalog.repository.event_store.get(creator_skill_id(number))
        assert isinstance(last, CreatorSkill.Removed) and last.actor.startswith("operator:"), last
    *_, before = stores.catalog.repository.event_store.get(creator_skill_id(theirs[2]))
    assert isinstance(before, CreatorSkill.Removed) and before.actor == f"user:{person['id']}", before
    assert skills_seen(api, other["profile"]["id"], viewer)["listed"] == 1  # another creator's stays

    # With a token whose standing the server still keeps: no skill of theirs comes back, nor a new one.
    refused = {"detail": "Токен недействителен или просрочен."}
    for path, body in (
        ("/api/creator-skills/", {"skill": first, "level": 3}),
        ("/api/creator-skills/bulk_update/", [{"skill_id": first, "level": 3}]),
    ):
        again = api.client.post(path, headers=person["headers"], json=body)
        assert (again.status_code, again.json()) == (401, refused), path
    assert skills_seen(api, person["profile"]["id"], viewer) == gone

    verified = ugc(settings, backend, "verify", "--json")  # every read table equals a replay of the log
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["findings"] == []
    rebuilt = ugc(settings, backend, "rebuild", "creator_skills")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert skills_seen(api, person["profile"]["id"], viewer) == gone
    second_run = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert second_run.returncode == 0 and "0 creator skill(s) withdrawn" in second_run.stdout, second_run.stderr


def test_replaying_the_journal_withdraws_the_skills_of_a_creator_erased_before_it_did(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    """Erased as before this release (keys destroyed, `User.Erased`): `--replay` finishes the erasure."""
    person, viewer = a_person(api), api.verified_user()
    with_skills(api, person, dict.fromkeys(some_skills(api, 1), 4))
    erased_as_before(person, settings, stores)
    assert skills_seen(api, person["profile"]["id"], viewer)["listed"] == 1

    replayed = ugc(settings, backend, "users", "erase", "--replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "1 creator skill(s) withdrawn" in replayed.stdout, replayed.stdout
    assert skills_seen(api, person["profile"]["id"], viewer) == {"listed": 0, "in the whole list": 0, "in profile": 0}


@pytest.mark.timeout(60)
def test_an_erased_persons_sockets_close_4401_once_their_standing_is_asked_again(
    api: Api, backend: str, settings: Settings, clock: MovableClock
) -> None:
    """Sockets opened before the erasure: the notification socket closes by itself within the
    standing's time (the clock moved past it, plus at most EXPIRY_CHECK); a chat frame finds the
    account gone and closes its socket 4401 rather than answering an error frame."""
    person, boris = api.verified_user(), api.verified_user()
    chat = api.client.post("/api/v1/conversations/", headers=boris["headers"], json={"recipient_id": person["id"]})
    path = f"/ws/conversations/{chat.json()['id']}/?token="
    with (
        api.client.websocket_connect(f"/ws/notifications/?token={person['access']}") as alerts,
        api.client.websocket_connect(path + person["access"]) as theirs,
        api.client.websocket_connect(path + boris["access"]) as his,
    ):
        theirs.send_text(json.dumps({"message": "ещё здесь"}))
        assert json.loads(his.receive_text())["message"] == "ещё здесь"
        assert json.loads(theirs.receive_text())["message"] == "ещё здесь"

        done = ugc(settings, backend, "users", "erase", person["username"], "--yes")
        assert done.returncode == 0, done.stderr
        clock.advance(KEPT_FOR + timedelta(seconds=1))

        started = time.monotonic()
        theirs.send_text(json.dumps({"message": "после стирания"}))
        with pytest.raises(WebSocketDisconnect) as sending:
            theirs.receive_text()
        assert sending.value.code == 4401
        with pytest.raises(WebSocketDisconnect) as listening:
            alerts.receive_text()
        assert listening.value.code == 4401 and time.monotonic() - started < EXPIRY_CHECK + 2

        # The other party's socket stays: a send to the erased person gets an error frame, nothing stored.
        his.send_text(json.dumps({"message": "ты здесь?"}))
        assert json.loads(his.receive_text()) == {"error": "Аккаунт собеседника удален: отправка сообщений невозможна."}
        his.close()


def test_an_erased_creators_profile_answers_a_new_etag_so_no_client_keeps_their_data(
    api: Api, backend: str, settings: Settings, db: Database
) -> None:
    person = a_person(api)
    path = f"/api/v1/creators/{person['profile']['id']}/"
    before = {detail: api.client.get(path, params={"detail": detail}) for detail in ("false", "true")}

    done = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert done.returncode == 0, done.stderr

    for detail, seen in before.items():
        after = api.client.get(path, params={"detail": detail})
        assert after.json()["portfolio_link"] == "" != seen.json()["portfolio_link"], detail
        assert after.headers["ETag"] != seen.headers["ETag"], detail  # a client revalidating gets the blank body
    again = ugc(settings, backend, "users", "erase", person["username"], "--yes")  # nothing changes a second time
    assert again.returncode == 0, again.stderr
    assert api.client.get(path, params={"detail": detail}).headers["ETag"] == after.headers["ETag"]


def test_replaying_the_journal_moves_the_profile_etag_of_a_creator_erased_before_profiles_were(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    """Erased as before this release: the keys destroyed and `User.Erased`, the profile's version unmoved."""
    person = a_person(api)
    path = f"/api/v1/creators/{person['profile']['id']}/"
    erased_as_before(person, settings, stores)
    before = eventually(lambda: (seen := api.client.get(path)).json()["portfolio_link"] == "" and seen)

    replayed = ugc(settings, backend, "users", "erase", "--replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "creator profile marked erased" in replayed.stdout, replayed.stdout
    assert eventually(lambda: api.client.get(path).headers["ETag"] != before.headers["ETag"])


def test_erasing_again_finishes_quietly_and_a_wrong_name_or_no_confirmation_erases_nothing(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    person = api.verified_user()
    unconfirmed = ugc(settings, backend, "users", "erase", person["username"])
    assert unconfirmed.returncode == 2 and "not confirmed" in unconfirmed.stderr
    unknown = ugc(settings, backend, "users", "erase", "nobody_by_that_name", "--yes")
    assert unknown.returncode == 1 and "no user named 'nobody_by_that_name'" in unknown.stderr
    user: User = stores.accounts.repository.get(aggregate_id("user", person["id"]))
    assert not user.erased and user.email == person["email"]

    first = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    second = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "erased: 2 data key(s) destroyed" in first.stdout  # the user's and the mail token's
    assert "was erased before; finished erasing: 0 data key(s) destroyed" in second.stdout
    granted = ugc(settings, backend, "users", "grant", person["username"], "admin")
    assert granted.returncode == 1 and "no user named" in granted.stderr


def test_an_erasure_asked_for_by_the_name_in_another_case_is_journaled_and_replayed_as_the_accounts(
    api: Api, backend: str, settings: Settings, stores: EventStores
) -> None:
    """Usernames are claimed case-blind, so the operator may type `ANNA` for `anna`: the journal then
    names the account as it is, and a line that holds the name as typed still replays after a restore."""
    person = api.verified_user()
    done = ugc(settings, backend, "users", "erase", person["username"].upper(), "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{person['username']} (id {person['id']}) erased"), done.stdout  # the account's
    verified = ugc(settings, backend, "verify", "--json")
    mine = [f for f in json.loads(verified.stdout)["findings"] if f"user {person['id']} " in f["what"]]
    assert mine == []

    # A database restored from before the erasure of a person whose line holds the name as typed.
    other = api.verified_user()
    record_erasure(settings.audit_dir, settings.audit_key, other["id"], other["username"].upper(), datetime.now(UTC))
    replayed = ugc(settings, backend, "users", "erase", "--replay")
    assert f"user {other['id']} here is" not in replayed.stderr, replayed.stderr
    user: User = stores.accounts.repository.get(aggregate_id("user", other["id"]))
    assert (user.erased, user.email) == (True, "")


def test_a_wrong_or_missing_data_key_is_named_and_reads_nothing(api: Api, settings: Settings) -> None:
    person = api.verified_user()
    user_id = aggregate_id("user", person["id"])
    for data_key, message in (
        ("another-key-entirely-another-key-entirely", "do not open with this UGC_DATA_KEY"),
        (None, "no data key configured"),
    ):
        stores = EventStores(settings.database_url, data_key=data_key)
        try:
            with pytest.raises(PersonalDataError, match=message):
                stores.accounts.repository.get(user_id)
        finally:
            stores.close()


@pytest.mark.parametrize("command", [("serve", "--port", "18599"), ("project",), ("migrate",)])
def test_a_process_with_another_data_key_refuses_to_start_in_one_line(
    api: Api, backend: str, settings: Settings, command: tuple[str, ...]
) -> None:
    api.verified_user()  # the database holds data keys
    env = environment(backend, settings.database_url, settings.var_dir) | {
        "UGC_DATA_KEY": "not-the-deployments-key-0123456789"
    }
    done = run_ugc(env, *command, timeout=60)
    # A configuration error, as a missing or malformed key is: exit 2, and no "failed" of a command that ran.
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"ugc: {command[0]}: the data keys in this database do not open with this UGC_DATA_KEY")
    ), done.stderr


def test_a_verification_mail_whose_address_was_erased_before_it_went_is_not_sent(tmp_path: Path) -> None:
    mailer = Mailer(smtp_url=None, outbox_dir=tmp_path, sender="noreply@ugc.test")
    now = datetime.now(UTC)
    unverified = User(1, "someone", "still.here@example.com", "", "", "", now, "user:1")
    projection = VerificationMailProjection(
        mailer, lambda number: unverified, secret_key="k" * 32, public_url="http://ugc.test"
    )
    for email in ("", "still.here@example.com"):  # as an erased person's token reads, and a live one's
        token = VerificationToken(
            key=email or "gone", user_number=1, email=email, expires_at=now + timedelta(days=1), at=now, actor="user:1"
        )
        [issued] = token.collect_events()
        projection.token_issued(issued)  # type: ignore[arg-type]
    [sent] = tmp_path.iterdir()
    assert "To: still.here@example.com" in sent.read_text()


def test_an_address_claimed_before_claims_were_digests_still_counts_as_taken(api: Api, stores: EventStores) -> None:
    """A log from before this release claims addresses by themselves; registration still finds them."""
    legacy = Claim(
        kind="email",
        value="Legacy.Person@example.com",
        owner_number=999_999,
        at=datetime.now(UTC),
        actor="operator:test",
    )
    stores.accounts.save(legacy)
    body = {"username": "legacy_other", "email": "legacy.person@example.com", "password": "correct-horse-battery"}
    answer = api.client.post("/api/auth/register/", json=body | {"first_name": "", "last_name": ""})
    assert (answer.status_code, answer.json()) == (409, {"error": "Пользователь с таким email уже существует."})


def test_nothing_new_is_sealed_for_an_erased_person_not_even_by_a_request_already_under_way(
    api: Api, backend: str, settings: Settings, stores: EventStores, db: Database, clock: MovableClock
) -> None:
    """A creator profile started before the erasure and saved after it must not be projected in the clear."""
    person = api.verified_user()
    assert ugc(settings, backend, "users", "erase", person["username"], "--yes").returncode == 0
    creators = CreatorCommands(stores, db, clock)
    with pytest.raises(PersonErased):
        creators.create_profile(
            person["id"], specialization="После стирания", experience="", portfolio_link="", social_links={}
        )
    assert stores.data_keys is not None
    with pytest.raises(PersonErased):  # any aggregate of theirs, a new verification token's as much as a profile's
        stores.data_keys.for_sealing(uuid.uuid4(), person["id"])
    with db.read() as cur:
        assert cur.execute("SELECT * FROM creator_profiles WHERE user_id = %s", (person["id"],)).fetchall() == []


def sealed_at_once(sides: list[DataKeys], subject: uuid.UUID, person: int) -> list[bytes | PersonErased]:
    """What `for_sealing(subject, person)` gives on each of `sides`, all called at the same moment."""
    start = threading.Barrier(len(sides))
    made: list[bytes | PersonErased] = []

    def seal(keys: DataKeys) -> None:
        start.wait()
        try:
            made.append(keys.for_sealing(subject, person))
        except PersonErased as refused:
            made.append(refused)

    threads = [threading.Thread(target=seal, args=(keys,)) for keys in sides]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made


def test_two_requests_sealing_a_new_aggregate_at_once_share_its_key_and_neither_is_taken_for_erased(
    api: Api, settings: Settings, stores: EventStores
) -> None:
    """Two processes seal the first event of one aggregate at the same moment (a double-clicked "become
    a creator": the profile's id is the user's): one makes the key, the other must use it. On
    PostgreSQL the loser's statement saw the table as it was before the winner's key was committed,
    found no key, and was refused as if the person were erased: 401 "Токен недействителен или
    просрочен." for a live user, where the profile's answer is 409."""
    person = api.verified_user()
    other = EventStores(settings.database_url, data_key=settings.data_key)  # another process's keys
    try:
        assert stores.data_keys is not None and other.data_keys is not None
        sides = [stores.data_keys, other.data_keys]
        for keys in sides:
            keys.check()
        for _ in range(100):
            made = sealed_at_once(sides, uuid.uuid4(), person["id"])
            assert not [answer for answer in made if isinstance(answer, PersonErased)]
            assert len(set(made)) == 1, "both must seal with the one key stored"
    finally:
        other.close()


def test_a_key_that_does_not_open_is_no_reason_to_fail_the_keys_made_before_it(
    api: Api, settings: Settings, stores: EventStores
) -> None:
    """A replay fetches the keys made after a missing one; a bad one among them fails only its own aggregate."""
    person = api.verified_user()
    assert stores.data_keys is not None
    intruder = uuid.uuid4()
    foreign = DataKeys(
        stores.data_keys.datastore,
        stores.data_keys.table,
        "a-key-of-another-deployment-0123456789",
        events_table=stores.data_keys.events_table,
    )
    foreign.check = lambda: None  # type: ignore[method-assign]  # as a process that skipped the check would
    foreign.for_sealing(intruder, None)
    cold = EventStores(settings.database_url, data_key=settings.data_key)  # nothing opened yet
    try:
        user: User = cold.accounts.repository.get(aggregate_id("user", person["id"]))
        assert user.email == person["email"]
        assert cold.data_keys is not None
        with pytest.raises(PersonalDataError, match="do not open with this UGC_DATA_KEY"):
            cold.data_keys.for_opening(intruder)
    finally:
        cold.close()


def test_a_database_is_pinned_to_the_first_data_key_even_before_it_holds_personal_data(
    backend: str, tmp_path: Path
) -> None:
    """Two development servers with var dirs of their own on one database: the second refuses in one line."""
    with fresh_database(backend, tmp_path, migrated=True) as url:
        first = environment(backend, url, tmp_path / "first") | {"UGC_DATA_KEY": "the-first-data-key-0123456789"}
        second = environment(backend, url, tmp_path / "second") | {"UGC_DATA_KEY": "the-second-data-key-0123456789"}
        assert run_ugc(first, "users", "list").returncode == 0  # no personal data yet: it pins the key all the same
        made = run_ugc(second, "users", "create", "second_user", "--email", "s@example.com", stdin="long-password\n")
        assert made.returncode == 2
        assert "do not open with this UGC_DATA_KEY" in made.stderr.strip().splitlines()[-1], made.stderr
        made = run_ugc(first, "users", "create", "first_user", "--email", "f@example.com", stdin="long-password\n")
        assert made.returncode == 0, made.stderr


def test_on_sqlite_the_destroyed_keys_leave_no_bytes_in_the_accounts_file(tmp_path: Path) -> None:
    """An UPDATE that shortens a row frees the rest of its cell: without `secure_delete` (SQLite's
    own default, and some builds') a destroyed key stayed readable in the file's free space. The
    store's connections set it (sqlite_pragmas.EVENT_STORES), whatever the build's default. The
    zeroed pages are written to the write-ahead log, beside the keys' own frames, and the file kept
    its copies until a checkpoint came (SQLite's own, every 1,000 pages): the erasure checkpoints."""
    url = f"sqlite:///{tmp_path / 'ugc.sqlite3'}"
    stores = EventStores(url, create_table=True, data_key=DATA_KEY)
    accounts = Path(eventsourcing_settings(url, "accounts", create_table=False)["SQLITE_DBNAME"])
    try:
        assert stores.data_keys is not None
        person = 7
        for _ in range(10):
            stores.data_keys.for_sealing(uuid.uuid4(), person)
        with closing(sqlite3.connect(accounts)) as conn:
            wrapped = [bytes(w) for (w,) in conn.execute("SELECT wrapped FROM data_keys WHERE person = ?", (person,))]
        assert stores.data_keys.destroy(person, [], datetime.now(UTC)) == len(wrapped) == 10
        log = accounts.with_name(f"{accounts.name}-wal")
        stored = accounts.read_bytes() + (log.read_bytes() if log.exists() else b"")
        assert [key for key in wrapped if key in stored] == []
    finally:
        stores.close()


def test_on_sqlite_the_erased_rows_leave_no_bytes_in_the_read_sides_file_or_its_log(
    api: Api, backend: str, settings: Settings
) -> None:
    """The blanked rows' pages went to the write-ahead log, and the file kept their old copies, the
    plaintext, until a checkpoint came: the erasure checkpoints once they are blanked."""
    if backend != "sqlite":
        pytest.skip("SQLite's file and its -wal")
    person = a_person(api)
    erased = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert erased.returncode == 0 and "not blanked" not in erased.stderr, erased.stderr
    mine = (person["email"], f"{SOCIAL}_{person['username']}", f"{LINK}/{person['username']}")
    path = sqlite_path(settings.database_url)
    log = path.with_name(f"{path.name}-wal")
    stored = path.read_bytes() + (log.read_bytes() if log.exists() else b"")
    assert [text for text in mine if text.encode() in stored] == []


def test_on_postgresql_the_erased_rows_old_versions_and_keys_are_vacuumed_away(
    api: Api, backend: str, settings: Settings, db: Database
) -> None:
    """An UPDATE leaves the old row on its page: without a vacuum, pageinspect reads the plaintext and the key."""
    if backend != "postgres":
        pytest.skip("SQLite zeroes what it deletes as it goes (secure_delete)")
    person = a_person(api)
    with db.read() as cur:
        keys = cur.execute("SELECT wrapped FROM accounts_data_keys WHERE person = %s", (person["id"],)).fetchall()
    erased = ugc(settings, backend, "users", "erase", person["username"], "--yes")
    assert erased.returncode == 0 and "not blanked" not in erased.stderr, erased.stderr
    # What is this person's alone (other tests' people share the names, and are not erased).
    mine = (person["email"], f"{SOCIAL}_{person['username']}", f"{LINK}/{person['username']}")
    secrets = [*(text.encode() for text in mine), *(bytes(k["wrapped"]) for k in keys)]
    with db.transaction(write=True) as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    with db.read() as cur:
        for table in ("users", "creator_profiles", "accounts_data_keys", "idempotency_keys"):
            picked = cur.execute("SELECT pg_relation_size(%s) / 8192 AS n", (table,)).fetchone()
            assert picked is not None
            pages = picked["n"]
            tuples = b"".join(
                bytes(row["t_data"])
                for page in range(pages)
                for row in cur.execute(
                    "SELECT t_data FROM heap_page_items(get_raw_page(%s, %s)) WHERE t_data IS NOT NULL", (table, page)
                ).fetchall()
            )
            assert [s for s in secrets if s in tuples] == [], table


def test_an_erasure_whose_read_tables_lag_says_what_clears_their_old_rows_on_its_backend(
    api: Api, backend: str, db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has no autovacuum: it zeroes what it deletes as it goes (`secure_delete`), and the line
    named PostgreSQL's. (The app, `api`, has its read models follow the logs.)"""
    monkeypatch.setattr(users_cli, "ERASE_WAIT", 0.2)  # the projections never get that far here
    users_cli._clear_old_rows(db, {"accounts": 10**12})
    said = capsys.readouterr().err
    assert "the read tables were not blanked within 0 s" in said
    assert ("autovacuum then clears the old rows" if backend == "postgres" else "SQLite zeroes the old rows") in said
