"""Skills as administrators write them: create, update, unique names; everyone else gets 403."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.backends import environment
from tests.conftest import Api, refused
from ugc import cli
from ugc.config import Settings
from ugc.events import operator_actor

FORBIDDEN = {"detail": "У вас недостаточно прав для выполнения данного действия."}
NOT_FOUND = {"detail": "Страница не найдена."}
NAME_TAKEN = {"error": "Навык с таким названием уже существует."}


def admin(api: Api) -> dict[str, Any]:
    """A user granted the `admin` role (what `ugc users grant NAME admin` does)."""
    user = api.verified_user()
    grant(api.client, user["username"])
    return user


def grant(client: TestClient, username: str) -> None:
    # Roles are checked on the write side (the User aggregate), so no read model needs to catch up.
    client.app.state.services.accounts.grant_role(username, "admin", operator_actor("test"))  # type: ignore[attr-defined]


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def created(api: Api, user: dict[str, Any], name: str, description: str = "") -> dict[str, Any]:
    response = api.client.post("/api/skills/", headers=user["headers"], json={"name": name, "description": description})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_admin_creates_a_skill_everyone_can_read(api: Api) -> None:
    boss = admin(api)
    name = unique("Blender")
    body = created(api, boss, name, "3D-моделирование и анимация")
    assert body == {"id": body["id"], "name": name, "description": "3D-моделирование и анимация"}
    assert isinstance(body["id"], int) and body["id"] > 0
    assert api.client.get(f"/api/skills/{body['id']}/").json() == body
    found = api.client.get("/api/skills/", params={"search": "3d-МОДЕЛИРОВАНИЕ"}).json()["results"]
    assert body in found


def test_description_is_optional(api: Api) -> None:
    boss = admin(api)
    name = unique("Figma")
    response = api.client.post("/api/skills/", headers=boss["headers"], json={"name": f"  {name}  "})
    assert response.status_code == 201
    assert response.json()["name"] == name and response.json()["description"] == ""


def test_only_admins_write_skills(api: Api) -> None:
    boss = admin(api)
    skill = created(api, boss, unique("Premiere"))
    for user in (api.verified_user(), api.creator()):
        response = api.client.post("/api/skills/", headers=user["headers"], json={"name": unique("Hack")})
        assert (response.status_code, response.json()) == (403, FORBIDDEN)
        for method in ("put", "patch"):
            response = api.client.request(
                method, f"/api/skills/{skill['id']}/", headers=user["headers"], json={"name": unique("Hack")}
            )
            assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert api.client.get(f"/api/skills/{skill['id']}/").json() == skill


def test_writes_need_a_token(api: Api) -> None:
    assert api.client.post("/api/skills/", json={"name": unique("x")}).status_code == 401
    assert api.client.patch("/api/skills/1/", json={"name": unique("x")}).status_code == 401
    assert api.client.put("/api/skills/1/", json={"name": unique("x")}).status_code == 401


def test_a_taken_name_is_409_whatever_its_case(api: Api) -> None:
    boss = admin(api)
    name = unique("Cinema")
    created(api, boss, name)
    for again in (name, name.upper(), f" {name.lower()} "):
        response = api.client.post("/api/skills/", headers=boss["headers"], json={"name": again})
        assert (response.status_code, response.json()) == (409, NAME_TAKEN)
    reference = api.client.post("/api/skills/", headers=boss["headers"], json={"name": "photoshop"})
    assert (reference.status_code, reference.json()) == (409, NAME_TAKEN)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "description": "x" * 1001}, "description"),
        ({"name": "ok", "description": None}, "description"),
    ],
)
def test_bad_fields_are_422(api: Api, body: dict[str, Any], field: str) -> None:
    boss = admin(api)
    response = api.client.post("/api/skills/", headers=boss["headers"], json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "Ошибка валидации данных."
    assert list(response.json()["fields"]) == [field]


def test_patch_changes_the_given_fields_and_search_follows(api: Api) -> None:
    boss = admin(api)
    old_word, new_word = f"старое{uuid.uuid4().hex[:6]}", f"новое{uuid.uuid4().hex[:6]}"
    skill = created(api, boss, unique("Lightroom"), f"Описание {old_word}")
    response = api.client.patch(
        f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"description": f"Описание {new_word}"}
    )
    assert response.status_code == 200
    assert response.json() == skill | {"description": f"Описание {new_word}"}
    assert api.client.get("/api/skills/", params={"search": old_word}).json()["count"] == 0
    assert [s["id"] for s in api.client.get("/api/skills/", params={"search": new_word.upper()}).json()["results"]] == [
        skill["id"]
    ]
    unchanged = api.client.patch(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={})
    assert unchanged.status_code == 200 and unchanged.json() == response.json()
    null = api.client.patch(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"name": None})
    assert null.status_code == 422 and list(null.json()["fields"]) == ["name"]


def test_skill_search_reads_yo_as_ye_either_way(api: Api) -> None:
    boss = admin(api)
    tag = uuid.uuid4().hex[:8]
    skill = created(api, boss, f"Съёмка {tag}", f"Ещё {tag}")
    for term in (f"съемка {tag}", f"СЪЁМКА {tag}", f"ещё {tag}", f"ЕЩЕ {tag}"):
        found = api.client.get("/api/skills/", params={"search": term}).json()["results"]
        assert [s["id"] for s in found] == [skill["id"]], term


def test_skill_search_reads_any_run_of_whitespace_as_one_space(api: Api) -> None:
    boss = admin(api)
    tag = uuid.uuid4().hex[:8]
    skill = created(api, boss, f"Монтаж  рилсов {tag}", f"Быстро\nи качественно {tag}")
    for term in (f"монтаж рилсов {tag}", f"монтаж\t\tрилсов {tag}", f"быстро и качественно {tag}"):
        found = api.client.get("/api/skills/", params={"search": term}).json()["results"]
        assert [s["id"] for s in found] == [skill["id"]], term


def skills(api: Api, term: str) -> tuple[list[int], int]:
    """The ids `?search=term` finds and its `count`."""
    response = api.client.get("/api/skills/", params={"search": term, "page_size": 100})
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["results"]], response.json()["count"]


def test_skill_search_finds_every_word_in_the_name_or_description(api: Api) -> None:
    """As Django REST framework's SearchFilter, whose wording the spec keeps: the term's words (split at
    whitespace and commas) must each be in the name or the description, in any order and apart. The
    whole term was one substring: "монтаж reels" found nothing of "Монтаж Reels-видео"."""
    boss = admin(api)
    tag = uuid.uuid4().hex[:8]
    made = created(api, boss, f"Монтаж Reels-видео {tag}", "Обычный сервис, быстро")["id"]
    other = created(api, boss, f"Монтаж {tag}", "Без роликов 50%")["id"]
    for term in (f"монтаж reels {tag}", f"{tag},REELS", f"сервис обычный {tag}", f"{tag} ы ж", f"видео, быстро {tag}"):
        assert skills(api, term) == ([made], 1), term
    for term in (f"монтаж {tag}", f" {tag} ,, т "):
        found, count = skills(api, term)
        assert (sorted(found), count) == (sorted([made, other]), 2), term
    for term in (f"{tag} reels роликов", f"{tag} монтаж _", f"{tag} 50_", f"{tag} щ"):
        assert skills(api, term) == ([], 0), term
    assert skills(api, f"{tag} 50%") == ([other], 1)


def test_a_skill_search_of_more_than_ten_words_is_422(api: Api) -> None:
    response = api.client.get("/api/skills/", params={"search": " ".join("абвгдежзийк")})
    assert (response.status_code, response.json()) == (
        422,
        refused("search", "Убедитесь, что поиск содержит не более 10 слов."),
    )
    boss = admin(api)
    tag = uuid.uuid4().hex[:8]
    made = created(api, boss, f"Слово {tag}")["id"]
    assert skills(api, " ".join([tag] * 11)) == ([made], 1)


def test_put_replaces_name_and_description(api: Api) -> None:
    boss = admin(api)
    skill = created(api, boss, unique("Audition"), "Звук")
    name = unique("Audition CC")
    response = api.client.put(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"name": name})
    assert response.status_code == 200
    assert response.json() == {"id": skill["id"], "name": name, "description": ""}
    missing = api.client.put(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"description": "x"})
    assert missing.status_code == 422 and list(missing.json()["fields"]) == ["name"]


def test_a_rename_frees_the_old_name_and_cannot_take_a_used_one(api: Api) -> None:
    boss = admin(api)
    first, second = unique("Maya"), unique("Houdini")
    skill = created(api, boss, first)
    other = created(api, boss, second)
    clash = api.client.patch(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"name": second.upper()})
    assert (clash.status_code, clash.json()) == (409, NAME_TAKEN)
    recased = api.client.patch(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"name": first.upper()})
    assert recased.status_code == 200 and recased.json()["name"] == first.upper()
    renamed = api.client.patch(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"name": unique("Maya")})
    assert renamed.status_code == 200
    reused = created(api, boss, first)
    assert reused["id"] not in (skill["id"], other["id"])
    back = api.client.patch(f"/api/skills/{skill['id']}/", headers=boss["headers"], json={"name": first})
    assert (back.status_code, back.json()) == (409, NAME_TAKEN)


def test_unknown_skill_is_404_before_403(api: Api) -> None:
    boss, nobody = admin(api), api.verified_user()
    for user in (boss, nobody):
        response = api.client.patch("/api/skills/987654321/", headers=user["headers"], json={"name": unique("x")})
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    huge = api.client.patch(f"/api/skills/{2**70}/", headers=boss["headers"], json={"name": unique("x")})
    assert huge.status_code == 404


def test_the_cli_grant_makes_an_admin(
    api: Api, backend: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = api.verified_user()
    for name, value in environment(backend, settings.database_url, settings.var_dir).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["users", "grant", user["username"], "admin"]) == 0
    created(api, user, unique("Granted"))
