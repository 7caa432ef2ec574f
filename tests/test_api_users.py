"""The signed-in user's account, creator profiles, and public creator pages."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Api

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def test_me_has_every_field_of_the_spec(api: Api) -> None:
    user = api.user(first_name="Мария", last_name="Иванова")
    body = api.client.get("/api/v1/users/me/", headers=user["headers"]).json()
    assert body == {
        "id": user["id"],
        "username": user["username"],
        "email": user["email"],
        "first_name": "Мария",
        "last_name": "Иванова",
        "full_name": "Мария Иванова",
        "avatar": None,
        "phone": "",
        "bio": "",
        "is_verified": False,
        "user_type": "Клиент",
        "date_joined": body["date_joined"],
        "has_creator_profile": False,
        "has_client_profile": True,
    }
    assert ISO_UTC.match(body["date_joined"])


def test_full_name_is_trimmed_when_a_part_is_missing(api: Api) -> None:
    user = api.user(first_name="Мария", last_name="")
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).json()["full_name"] == "Мария"


def test_patch_changes_only_writable_fields_and_answers_the_spec_shape(api: Api) -> None:
    user = api.verified_user()
    response = api.client.patch(
        "/api/v1/users/me/",
        headers=user["headers"],
        json={
            "first_name": "Пётр",
            "phone": "+7 (900) 000-00-00",
            "bio": "Снимаю",
            "username": "hijack",
            "is_verified": False,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "full_name",
        "avatar",
        "phone",
        "bio",
        "is_verified",
        "user_type",
        "date_joined",
    }
    assert body["first_name"] == "Пётр" and body["phone"] == "+7 (900) 000-00-00" and body["bio"] == "Снимаю"
    assert body["username"] == user["username"] and body["is_verified"] is True
    me = api.client.get("/api/v1/users/me/", headers=user["headers"]).json()
    assert me["full_name"] == "Пётр Петров"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "x" * 151}, "first_name"),
        ({"phone": "call me"}, "phone"),
        ({"bio": None}, "bio"),
        ({"bio": "b" * 2001}, "bio"),
    ],
)
def test_patch_refuses_bad_values(api: Api, body: dict[str, object], field: str) -> None:
    user = api.verified_user()
    response = api.client.patch("/api/v1/users/me/", headers=user["headers"], json=body)
    assert response.status_code == 422
    assert field in response.json()["fields"]


def test_patch_needs_a_token(api: Api) -> None:
    assert api.client.patch("/api/v1/users/me/", json={"bio": "x"}).status_code == 401


PROFILE = {
    "specialization": "Видеограф",
    "experience": "5 лет",
    "portfolio_link": "https://example.com/me",
    "social_links": {"instagram": "https://instagram.com/me", "behance": "", "dribbble": ""},
}


def test_creating_a_creator_profile(api: Api) -> None:
    user = api.verified_user()
    response = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=PROFILE)
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "user": {"id": user["id"], "username": user["username"]},
        **PROFILE,
        "rating": 0,
        "completed_orders": 0,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    me = api.client.get("/api/v1/users/me/", headers=user["headers"]).json()
    assert me["user_type"] == "Креатор" and me["has_creator_profile"] is True


def test_a_second_creator_profile_is_a_409(api: Api) -> None:
    user = api.verified_user()
    assert (
        api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=PROFILE).status_code == 201
    )
    again = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=PROFILE)
    assert again.status_code == 409
    assert again.json() == {"error": "Профиль креатора уже существует."}


def test_patching_a_creator_profile(api: Api) -> None:
    user = api.verified_user()
    created = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=PROFILE).json()
    response = api.client.patch(
        "/api/v1/users/me/creator-profile/",
        headers=user["headers"],
        json={"social_links": {"instagram": "https://i.com/x"}},
    )
    assert response.status_code == 200
    assert response.json()["social_links"] == {"instagram": "https://i.com/x"}
    assert response.json()["specialization"] == PROFILE["specialization"]
    assert response.json()["id"] == created["id"]


def test_patching_a_missing_creator_profile_is_404(api: Api) -> None:
    user = api.verified_user()
    response = api.client.patch("/api/v1/users/me/creator-profile/", headers=user["headers"], json={"experience": "x"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Страница не найдена."}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "specialization"),
        ({"specialization": "x", "social_links": ["not", "an", "object"]}, "social_links"),
        ({"specialization": "x", "social_links": {"": "https://i.com/x"}}, "social_links"),
        ({"specialization": "x", "social_links": {"  ": "https://i.com/x"}}, "social_links"),
        ({"specialization": "x", "portfolio_link": "not a url"}, "portfolio_link"),
        # A link a page would render: a web address or a handle, never a script.
        ({"specialization": "x", "social_links": {"instagram": "javascript:alert(1)"}}, "social_links"),
        ({"specialization": "x", "social_links": {"behance": "data:text/html,<script>1</script>"}}, "social_links"),
        ({"specialization": "x", "social_links": {"dribbble": "java\tscript:alert(1)"}}, "social_links"),
        ({"specialization": "x", "social_links": {"vk": "https://vk.com/a b"}}, "social_links"),
        ({"specialization": "s" * 256}, "specialization"),
    ],
)
def test_creator_profile_validation(api: Api, body: dict[str, object], field: str) -> None:
    user = api.verified_user()
    response = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=body)
    assert response.status_code == 422
    assert any(name.startswith(field) for name in response.json()["fields"])


def test_a_social_link_is_a_web_address_or_a_handle(api: Api) -> None:
    user = api.verified_user()
    links = {"instagram": "@anna_video", "behance": "https://www.behance.net/anna", "dribbble": "anna.shots"}
    body = {"specialization": "x", "social_links": links}
    created = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=body)
    assert created.status_code == 201 and created.json()["social_links"] == links
    refused = api.client.patch(
        "/api/v1/users/me/creator-profile/", headers=user["headers"], json={"social_links": {"x": "javascript:void(0)"}}
    )
    assert refused.status_code == 422 and "Введите правильный URL." in str(refused.json()), refused.text


def test_public_creator_page_without_auth(api: Api) -> None:
    user = api.verified_user()
    created = api.client.post("/api/v1/users/me/creator-profile/", headers=user["headers"], json=PROFILE).json()
    plain = api.client.get(f"/api/v1/creators/{created['id']}/")
    assert plain.status_code == 200
    assert plain.json() == created
    detailed = api.client.get(f"/api/v1/creators/{created['id']}/?detail=true").json()
    assert detailed == created | {"skills": [], "portfolio": []}


def test_unknown_creator_is_404(api: Api) -> None:
    assert api.client.get("/api/v1/creators/987654/").status_code == 404
    assert api.client.get("/api/v1/creators/abc/").status_code == 404
