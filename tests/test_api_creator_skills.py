"""Creators' skills: one row per skill per creator, levels 1-5, owner-only writes, all-or-nothing bulk."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands.creator_skills import Wanted
from readmodels.creator_skills import list_creator_skills
from readmodels.pages import PageRequest
from tests.conftest import BAD_BODY_IDS, Api, refused_id
from tests.plans import relations_read, stored_by_hand, work
from ugc.errors import Conflict, InvalidField

FORBIDDEN = {"detail": "У вас недостаточно прав для выполнения данного действия."}
NOT_FOUND = {"detail": "Страница не найдена."}


@pytest.fixture(scope="module")
def skills(app_client: Any) -> dict[str, dict[str, Any]]:
    return reference_skills(app_client)


def reference_skills(client: Any) -> dict[str, dict[str, Any]]:
    """The reference skills by name, once the projection has applied them (they load at start-up)."""
    deadline = time.monotonic() + 5
    while True:
        results = client.get("/api/skills/?page_size=100").json()["results"]
        if any(skill["name"] == "Photoshop" for skill in results) or time.monotonic() > deadline:
            return {skill["name"]: skill for skill in results}
        time.sleep(0.02)


def add(api: Api, creator: dict[str, Any], skill: int, level: int = 3) -> Any:
    return api.client.post("/api/creator-skills/", headers=creator["headers"], json={"skill": skill, "level": level})


def added(api: Api, creator: dict[str, Any], skill: int, level: int = 3) -> dict[str, Any]:
    response = add(api, creator, skill, level)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(api: Api, viewer: dict[str, Any], creator: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.client.get(
        "/api/creator-skills/", headers=viewer["headers"], params={"creator_profile_id": creator["profile"]["id"]}
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def bulk(api: Api, creator: dict[str, Any], body: Any) -> Any:
    return api.client.post("/api/creator-skills/bulk_update/", headers=creator["headers"], json=body)


def test_a_creator_adds_a_skill_in_the_spec_shape(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    body = added(api, creator, skills["Photoshop"]["id"], 4)
    assert body == {
        "id": body["id"],
        "skill": {"id": skills["Photoshop"]["id"], "name": "Photoshop", "description": "Редактирование изображений"},
        "level": 4,
        "creator_profile": creator["profile"]["id"],
    }
    assert listed(api, api.verified_user(), creator) == [body]


def test_the_same_skill_twice_is_409(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    first = added(api, creator, skills["Illustrator"]["id"])
    again = add(api, creator, skills["Illustrator"]["id"], 5)
    assert again.status_code == 409
    assert again.json() == {"error": "Этот навык уже есть в профиле креатора."}
    assert listed(api, creator, creator) == [first]
    other = api.creator()
    assert added(api, other, skills["Illustrator"]["id"])["id"] != first["id"]


def test_only_creators_add_skills(api: Api, skills: dict[str, Any]) -> None:
    client = api.verified_user()
    response = add(api, client, skills["Photoshop"]["id"])
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert api.client.post("/api/creator-skills/", json={"skill": 1, "level": 1}).status_code == 401


MISSING = object()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"skill": MISSING}, "skill"),
        ({"skill": 987654321}, "skill"),
        ({"skill": 2**70}, "skill"),
        ({"skill": "1"}, "skill"),
        ({"skill": None}, "skill"),
        ({"level": 0}, "level"),
        ({"level": 6}, "level"),
        ({"level": -1}, "level"),
        ({"level": "3"}, "level"),
        ({"level": 3.5}, "level"),
        ({"level": True}, "level"),
        ({"level": MISSING}, "level"),
    ],
)
def test_bad_fields_are_422(api: Api, skills: dict[str, Any], change: dict[str, Any], field: str) -> None:
    creator = api.creator()
    body = {"skill": skills["Photoshop"]["id"], "level": 3} | change
    body = {name: value for name, value in body.items() if value is not MISSING}
    response = api.client.post("/api/creator-skills/", headers=creator["headers"], json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "Ошибка валидации данных."
    assert list(response.json()["fields"]) == [field]
    assert listed(api, creator, creator) == []


@pytest.mark.parametrize("bad", BAD_BODY_IDS)
def test_skill_ids_are_whole_positive_json_numbers(api: Api, skills: dict[str, Any], bad: Any) -> None:
    creator = api.creator()
    one = add(api, creator, bad)
    assert (one.status_code, one.json()) == (422, refused_id("skill"))
    entries = [{"skill_id": skills["Photoshop"]["id"], "level": 3}, {"skill_id": bad, "level": 3}]
    many = bulk(api, creator, entries)
    assert (many.status_code, many.json()) == (422, refused_id("1.skill_id"))
    assert listed(api, creator, creator) == []
    assert added(api, creator, skills["Photoshop"]["id"])["skill"]["name"] == "Photoshop"


def test_levels_one_and_five_are_the_bounds(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    assert added(api, creator, skills["Photoshop"]["id"], 1)["level"] == 1
    assert added(api, creator, skills["Illustrator"]["id"], 5)["level"] == 5


def test_listing_needs_a_token_and_filters_by_creator(api: Api, skills: dict[str, Any]) -> None:
    anna, boris = api.creator(), api.creator()
    a1 = added(api, anna, skills["Photoshop"]["id"], 4)
    a2 = added(api, anna, skills["Illustrator"]["id"], 5)
    b1 = added(api, boris, skills["Photoshop"]["id"], 2)
    viewer = api.verified_user()
    assert listed(api, viewer, anna) == [a1, a2]
    assert listed(api, viewer, boris) == [b1]
    everyone = api.client.get("/api/creator-skills/?page_size=100", headers=viewer["headers"]).json()
    assert {a1["id"], a2["id"], b1["id"]} <= {row["id"] for row in everyone["results"]}
    response = api.client.get("/api/creator-skills/", params={"creator_profile_id": anna["profile"]["id"]})
    assert (response.status_code, response.json()) == (401, {"detail": "Учетные данные не были предоставлены."})
    bad = api.client.get("/api/creator-skills/?creator_profile_id=abc", headers=viewer["headers"])
    assert bad.status_code == 422 and list(bad.json()["fields"]) == ["creator_profile_id"]
    none = api.client.get("/api/creator-skills/?creator_profile_id=987654321", headers=viewer["headers"]).json()
    assert none == {"count": 0, "next": None, "previous": None, "results": []}


def test_listing_is_paginated(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    ids = [added(api, creator, skill["id"])["id"] for skill in list(skills.values())[:5]]
    url = f"/api/creator-skills/?creator_profile_id={creator['profile']['id']}&page_size=2"
    first = api.client.get(url, headers=creator["headers"]).json()
    assert first["count"] == 5 and [r["id"] for r in first["results"]] == ids[:2] and first["previous"] is None
    last = api.client.get(f"{url}&page=3", headers=creator["headers"]).json()
    assert [r["id"] for r in last["results"]] == ids[4:] and last["next"] is None
    assert api.client.get(f"{url}&page=4", headers=creator["headers"]).status_code == 404


@pytest.mark.parametrize("method", ["put", "patch"])
def test_the_owner_changes_the_level(api: Api, skills: dict[str, Any], method: str) -> None:
    creator = api.creator()
    row = added(api, creator, skills["Photoshop"]["id"], 2)
    response = api.client.request(
        method, f"/api/creator-skills/{row['id']}/", headers=creator["headers"], json={"level": 5}
    )
    assert response.status_code == 200
    assert response.json() == row | {"level": 5}
    assert listed(api, creator, creator) == [row | {"level": 5}]
    for level in (0, 6, "5", None):
        bad = api.client.request(
            method, f"/api/creator-skills/{row['id']}/", headers=creator["headers"], json={"level": level}
        )
        assert bad.status_code == 422 and list(bad.json()["fields"]) == ["level"]
    assert listed(api, creator, creator)[0]["level"] == 5


def test_put_needs_the_level_and_an_empty_patch_changes_nothing(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    row = added(api, creator, skills["Photoshop"]["id"], 2)
    put = api.client.put(f"/api/creator-skills/{row['id']}/", headers=creator["headers"], json={})
    assert put.status_code == 422 and list(put.json()["fields"]) == ["level"]
    patch = api.client.patch(f"/api/creator-skills/{row['id']}/", headers=creator["headers"], json={})
    assert patch.status_code == 200 and patch.json() == row


def test_someone_elses_skill_is_403_for_every_write(api: Api, skills: dict[str, Any]) -> None:
    owner = api.creator()
    row = added(api, owner, skills["Photoshop"]["id"], 2)
    for intruder in (api.creator(), api.verified_user()):
        for method, body in (("put", {"level": 5}), ("patch", {"level": 5}), ("patch", {}), ("delete", None)):
            response = api.client.request(
                method, f"/api/creator-skills/{row['id']}/", headers=intruder["headers"], json=body
            )
            assert (response.status_code, response.json()) == (403, FORBIDDEN), (method, body)
    assert listed(api, owner, owner) == [row]
    assert api.client.delete(f"/api/creator-skills/{row['id']}/").status_code == 401


def test_unknown_creator_skill_is_404(api: Api) -> None:
    creator = api.creator()
    for method, body in (("put", {"level": 5}), ("patch", {"level": 5}), ("delete", None)):
        for number in (987654321, 2**70):
            response = api.client.request(
                method, f"/api/creator-skills/{number}/", headers=creator["headers"], json=body
            )
            assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_delete_then_add_again_restores_the_same_row(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    row = added(api, creator, skills["Photoshop"]["id"], 2)
    deleted = api.client.delete(f"/api/creator-skills/{row['id']}/", headers=creator["headers"])
    assert deleted.status_code == 204 and deleted.content == b""
    assert listed(api, creator, creator) == []
    for method, body in (("patch", {"level": 3}), ("delete", None)):
        gone = api.client.request(method, f"/api/creator-skills/{row['id']}/", headers=creator["headers"], json=body)
        assert (gone.status_code, gone.json()) == (404, NOT_FOUND)
    again = added(api, creator, skills["Photoshop"]["id"], 4)
    assert again == row | {"level": 4}
    assert listed(api, creator, creator) == [again]


def test_the_lists_totals_are_kept_not_counted(api: Api, skills: dict[str, Any]) -> None:
    """Adding, removing and restoring a skill move its creator's total and every creator's in
    `creator_skill_counts`, which a page's total reads instead of the creator skills (every one of
    the marketplace without a filter: 20,000, a sequential scan, 217 buffers)."""
    anna, boris = api.creator(), api.creator()

    def totals() -> tuple[int, int]:
        everyone = api.client.get("/api/creator-skills/", headers=anna["headers"]).json()["count"]
        hers = api.client.get(
            "/api/creator-skills/", headers=anna["headers"], params={"creator_profile_id": anna["profile"]["id"]}
        )
        return everyone, hers.json()["count"]

    before, _ = totals()
    removed = added(api, anna, skills["Photoshop"]["id"])
    added(api, anna, skills["Figma"]["id"])
    added(api, boris, skills["Figma"]["id"])
    assert totals() == (before + 3, 2)
    assert api.client.delete(f"/api/creator-skills/{removed['id']}/", headers=anna["headers"]).status_code == 204
    assert totals() == (before + 2, 1)
    added(api, anna, skills["Photoshop"]["id"], 4)
    assert totals() == (before + 3, 2)
    db = api.client.app.state.services.db  # type: ignore[attr-defined]
    for profile in (None, anna["profile"]["id"]):
        query = list_creator_skills(PageRequest(1, 20), profile)
        assert relations_read(db, *query.count) == {"creator_skill_counts"}


def test_bulk_update_adds_and_updates_in_the_spec_shape(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    photoshop = added(api, creator, skills["Photoshop"]["id"], 1)
    illustrator = added(api, creator, skills["Illustrator"]["id"], 1)
    body = [
        {"skill_id": skills["Photoshop"]["id"], "level": 3},
        {"skill_id": skills["Illustrator"]["id"], "level": 5},
        {"skill_id": skills["After Effects"]["id"], "level": 4},
    ]
    response = bulk(api, creator, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == [
        {
            "id": photoshop["id"],
            "skill_id": skills["Photoshop"]["id"],
            "skill_name": "Photoshop",
            "level": 3,
            "created": False,
        },
        {
            "id": illustrator["id"],
            "skill_id": skills["Illustrator"]["id"],
            "skill_name": "Illustrator",
            "level": 5,
            "created": False,
        },
        {
            "id": answer[2]["id"],
            "skill_id": skills["After Effects"]["id"],
            "skill_name": "After Effects",
            "level": 4,
            "created": True,
        },
    ]
    assert [(r["id"], r["skill"]["id"], r["level"]) for r in listed(api, creator, creator)] == [
        (a["id"], a["skill_id"], a["level"]) for a in answer
    ]
    again = bulk(api, creator, body).json()
    assert [a["created"] for a in again] == [False, False, False]
    assert [a["id"] for a in again] == [a["id"] for a in answer]


def test_bulk_update_brings_a_removed_skill_back_as_created(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    row = added(api, creator, skills["Photoshop"]["id"], 1)
    api.client.delete(f"/api/creator-skills/{row['id']}/", headers=creator["headers"])
    answer = bulk(api, creator, [{"skill_id": skills["Photoshop"]["id"], "level": 2}]).json()
    assert answer == [
        {"id": row["id"], "skill_id": skills["Photoshop"]["id"], "skill_name": "Photoshop", "level": 2, "created": True}
    ]
    assert listed(api, creator, creator) == [row | {"level": 2}]


@pytest.mark.parametrize(
    ("bad_entry", "field"),
    [
        ({"level": 6}, "2.level"),
        ({"level": 0}, "2.level"),
        ({"level": "4"}, "2.level"),
        ({"skill_id": 987654321}, "2.skill_id"),
        ({"skill_id": None}, "2.skill_id"),
        ({"skill_id": "Photoshop"}, "2.skill_id"),
        ({"duplicate": True}, "2.skill_id"),
    ],
)
def test_one_bad_entry_rejects_the_whole_list(
    api: Api, skills: dict[str, Any], bad_entry: dict[str, Any], field: str
) -> None:
    creator = api.creator()
    kept = added(api, creator, skills["Photoshop"]["id"], 1)
    before = listed(api, creator, creator)
    third: dict[str, Any] = {"skill_id": skills["Premiere Pro"]["id"], "level": 3}
    bad_entry = dict(bad_entry)
    if bad_entry.pop("duplicate", False):
        third["skill_id"] = skills["Photoshop"]["id"]
    body = [
        {"skill_id": skills["Photoshop"]["id"], "level": 5},
        {"skill_id": skills["Illustrator"]["id"], "level": 4},
        third | bad_entry,
    ]
    response = bulk(api, creator, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "Ошибка валидации данных."
    assert list(response.json()["fields"]) == [field]
    assert listed(api, creator, creator) == before == [kept]


def test_bulk_update_checks_levels_itself_and_appends_nothing_on_a_bad_entry(
    api: Api, app_client: Any, skills: dict[str, Any]
) -> None:
    """The command, without the HTTP layer's checks, still refuses a level out of range up front."""
    creator = api.creator()
    services = app_client.app.state.services
    catalog = services.creator_skills.app
    head = catalog.recorder.max_notification_id()
    wanted = [Wanted(skills["Photoshop"]["id"], 5), Wanted(skills["Illustrator"]["id"], 9)]
    with pytest.raises(InvalidField) as error:
        services.creator_skills.bulk_update(creator["id"], wanted)
    assert error.value.field == "1.level"
    assert catalog.recorder.max_notification_id() == head
    assert listed(api, creator, creator) == []


def test_bulk_update_body_rules(api: Api, skills: dict[str, Any]) -> None:
    creator = api.creator()
    assert bulk(api, creator, []).json() == []
    not_a_list = bulk(api, creator, {"skill_id": skills["Photoshop"]["id"], "level": 3})
    assert not_a_list.status_code == 400 and set(not_a_list.json()) == {"error"}
    entry = bulk(api, creator, [5])
    assert (entry.status_code, entry.json()["fields"]) == (422, {"0": ["Ожидается объект."]})
    too_many = bulk(api, creator, [{"skill_id": skills["Photoshop"]["id"], "level": 3}] * 201)
    assert too_many.status_code == 422
    client = api.verified_user()
    refused = bulk(api, client, [{"skill_id": skills["Photoshop"]["id"], "level": 3}])
    assert (refused.status_code, refused.json()) == (403, FORBIDDEN)
    assert api.client.post("/api/creator-skills/bulk_update/", json=[]).status_code == 401


def test_racing_adds_of_one_skill_leave_one_row(api: Api, app_client: Any, skills: dict[str, Any]) -> None:
    """The pair's claim decides on the write side: of concurrent adds, exactly one wins."""
    creator = api.creator()
    commands = app_client.app.state.services.creator_skills
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def add_once() -> None:
        start.wait()
        try:
            commands.add(creator["id"], skills["Озвучка"]["id"], 3)
            outcomes.append("added")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=add_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["added", "conflict", "conflict", "conflict"]
    deadline = time.monotonic() + 5
    while not listed(api, creator, creator) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(listed(api, creator, creator)) == 1


def test_a_page_of_every_creators_skills_reads_the_active_ones_not_those_removed(backend: str, tmp_path: Path) -> None:
    """With 3,000 creator skills removed ahead of 10 active ones (all of one creator), the list without
    a filter reads what that creator's list does. The index held removed skills too, so the page
    walked every removed one before the first active (on PostgreSQL 99,990 for 10 of 100,000). The rows
    are stored by hand: it is the read that is tested."""
    with stored_by_hand(
        backend,
        tmp_path,
        ("INSERT INTO skills (id, name, description, search_text) VALUES (900001, 's', 'd', 's')", ()),
        (
            "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 3010) "
            "INSERT INTO creator_skills (id, uuid, creator_profile_id, skill_id, level, active, created_at, "
            "updated_at) SELECT n, 'cs' || n, CASE WHEN n <= 3000 THEN n ELSE 5000 END, 900001, 3, n > 3000, "
            "%s, %s FROM numbers",
            (datetime.now(UTC), datetime.now(UTC)),
        ),
    ) as db:
        everyone = list_creator_skills(PageRequest(1, 20))
        with db.read() as cur:
            shown = [int(row["id"]) for row in cur.execute(*everyone.statements[1]).fetchall()]
        assert shown == list(range(3001, 3011))
        one = list_creator_skills(PageRequest(1, 20), 5000).statements[1]
        assert work(db.url, [everyone.statements[1]], "creator_skills") <= 2 * work(db.url, [one], "creator_skills")
