"""A user whose e-mail is not verified may sign in, read, and ask for the mail again — nothing more.

Every signed-in write is refused with 403 and one message (`api/auth.py`), REST and chat frames
alike (the chat socket's frames: tests/test_e2e_realtime.py), except the few that neither others
see nor cost storage (marking read, the mail again). Verifying counts on the next request, with
the token the user already has.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.app import ROUTES
from api.openapi import DocumentedRoute
from tests.conftest import LINK, Api, new_client, newest_link, token_audience
from ugc.clock import MovableClock
from ugc.config import Settings

# The spec's 403 sentence, as every 403 (DESIGN.md: 401/403/404 carry exactly the spec's messages).
NOT_VERIFIED = {"detail": "У вас недостаточно прав для выполнения данного действия."}
INVALID_LINK = "Ссылка подтверждения недействительна."
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64

# Writes open to an unverified user: private to them, and bounded by what others do.
OPEN_WRITES = {
    ("POST", "/api/auth/resend-verification/"),
    ("POST", "/api/v1/conversations/{id:id}/mark-as-read/"),
    ("POST", "/api/v1/notifications/mark-all-read/"),
    ("POST", "/api/v1/notifications/{id:id}/mark-as-read/"),
}


def _signed_in_writes() -> list[DocumentedRoute]:
    return [r for r in ROUTES if isinstance(r, DocumentedRoute) and r.method != "GET" and r.operation.auth]


def test_every_signed_in_write_needs_a_verified_email_but_the_open_ones() -> None:
    writes = _signed_in_writes()
    assert {(r.method, r.path) for r in writes if not r.needs_verified} == OPEN_WRITES
    assert len([r for r in writes if r.needs_verified]) >= 25


@pytest.mark.parametrize(
    "route", [r for r in _signed_in_writes() if r.needs_verified], ids=lambda r: f"{r.method} {r.path}"
)
def test_an_unverified_user_is_refused_each_gated_write_before_the_body_is_read(
    api: Api, route: DocumentedRoute
) -> None:
    unverified = api.user()
    path = re.sub(r"{\w+(:\w+)?}", "1", route.path)
    response = api.client.request(route.method, path, headers=unverified["headers"], content=b"not even JSON")
    assert (response.status_code, response.json()) == (403, NOT_VERIFIED)


def test_each_gated_action_with_a_well_formed_request_is_403(api: Api) -> None:
    unverified, friend, creator = api.user(), api.verified_user(), api.creator()
    service = api.service(creator)
    talk = api.client.post("/api/v1/conversations/", headers=friend["headers"], json={"recipient_id": unverified["id"]})
    assert talk.status_code == 201
    headers = unverified["headers"]
    attempts = {
        "creator profile": api.client.post(
            "/api/v1/users/me/creator-profile/", headers=headers, json={"specialization": "Видео"}
        ),
        "own profile": api.client.patch("/api/v1/users/me/", headers=headers, json={"bio": "Реклама тут"}),
        "service": api.client.post(
            "/api/v1/services/",
            headers=headers,
            json={"title": "x", "description": "y", "category_id": 1, "base_price": 1, "delivery_time": 1},
        ),
        "portfolio item": api.client.post(
            "/api/portfolio/",
            headers=headers,
            data={"title": "Логотип"},
            files={"cover_image": ("a.png", PNG, "image/png")},
        ),
        "portfolio image": api.client.post(
            "/api/portfolio-images/",
            headers=headers,
            data={"portfolio_item": "1"},
            files={"image": ("a.png", PNG, "image/png")},
        ),
        "creator skill": api.client.post("/api/creator-skills/", headers=headers, json={"skill": 1, "level": 3}),
        "conversation": api.client.post("/api/v1/conversations/", headers=headers, json={"recipient_id": friend["id"]}),
        "message": api.client.post(
            f"/api/v1/conversations/{talk.json()['id']}/messages/", headers=headers, json={"message": "Привет"}
        ),
        "upload": api.client.post(
            "/api/v1/files/upload/", headers=headers, files={"file": ("a.txt", b"hello", "text/plain")}
        ),
        "order": api.client.post(
            "/api/v1/orders/",
            headers=headers,
            json={"service_id": service["id"], "delivery_date": (date.today() + timedelta(days=3)).isoformat()},
        ),
    }
    assert {name: (r.status_code, r.json()) for name, r in attempts.items()} == {
        name: (403, NOT_VERIFIED) for name in attempts
    }
    # Nothing of it was stored.
    assert api.client.get("/api/v1/files/", headers=headers).json()["count"] == 0
    assert api.client.get("/api/v1/orders/", headers=headers).json()["count"] == 0
    messages = api.client.get(f"/api/v1/conversations/{talk.json()['id']}/messages/", headers=headers).json()
    assert messages["count"] == 0


def test_an_unverified_user_signs_in_reads_and_marks_read(api: Api) -> None:
    unverified, friend = api.user(), api.verified_user()
    talk = api.client.post("/api/v1/conversations/", headers=friend["headers"], json={"recipient_id": unverified["id"]})
    number = talk.json()["id"]
    sent = api.client.post(
        f"/api/v1/conversations/{number}/messages/", headers=friend["headers"], json={"message": "Добро пожаловать"}
    )
    assert sent.status_code == 201
    headers = unverified["headers"]
    for path in ("/api/v1/users/me/", "/api/v1/orders/", "/api/v1/conversations/", "/api/v1/files/"):
        assert api.client.get(path, headers=headers).status_code == 200, path
    assert api.client.get(f"/api/v1/conversations/{number}/messages/", headers=headers).json()["count"] == 1
    assert api.client.post(f"/api/v1/conversations/{number}/mark-as-read/", headers=headers).status_code == 200
    assert api.client.post("/api/v1/notifications/mark-all-read/", headers=headers).status_code == 200
    assert api.client.get("/api/v1/users/me/", headers=headers).json()["is_verified"] is False


def test_verifying_opens_the_gate_at_once_for_the_token_already_held(api: Api, settings: Settings) -> None:
    user, friend = api.user(), api.verified_user()
    start = {"recipient_id": friend["id"]}
    assert api.client.post("/api/v1/conversations/", headers=user["headers"], json=start).status_code == 403
    verified = api.client.post("/api/auth/verify-email/", json={"token": _mailed_tokens(settings, user["email"])[0]})
    assert verified.status_code == 200
    assert api.client.post("/api/v1/conversations/", headers=user["headers"], json=start).status_code == 201


def test_the_gated_writes_are_documented_with_their_403(api: Api) -> None:
    paths = api.client.get("/api/schema/").json()["paths"]
    assert "подтверждения email" in paths["/api/v1/orders/"]["post"]["responses"]["403"]["description"]
    assert "403" not in paths["/api/v1/notifications/mark-all-read/"]["post"]["responses"]
    assert "403" not in paths["/api/v1/orders/"]["get"]["responses"]


# Tokens of accounts that do not exist -----------------------------------------------------------


def _token_of_nobody(settings: Settings, typ: str = "access") -> str:
    now = int(time.time())
    claims = {"sub": "987654321", "typ": typ, "iat": now, "exp": now + 600, "jti": "nobody"}
    claims["aud"] = token_audience(settings)
    return jwt.encode(claims, settings.secret_key, algorithm="HS256")


def test_a_well_signed_token_of_a_user_that_does_not_exist_is_401_everywhere(api: Api, settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {_token_of_nobody(settings)}"}
    for method, path in [
        ("GET", "/api/v1/orders/"),
        ("GET", "/api/v1/notifications/"),
        ("GET", "/api/v1/conversations/"),
        ("GET", "/api/v1/files/"),
        ("GET", "/api/portfolio-images/"),
        ("POST", "/api/auth/resend-verification/"),
        ("POST", "/api/v1/notifications/mark-all-read/"),
    ]:
        response = api.client.request(method, path, headers=headers)
        assert (response.status_code, response.json()) == (401, {"detail": "Токен недействителен или просрочен."}), path
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        api.client.websocket_connect(f"/ws/notifications/?token={_token_of_nobody(settings)}") as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 4401


# The mail again ----------------------------------------------------------------------------------


def _mailed_tokens(settings: Settings, email: str, count: int = 1, timeout: float = 5.0) -> list[str]:
    """The tokens of every verification mail sent to `email`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        tokens = []
        for path in sorted(Path(settings.outbox_dir).glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
            mail = message_from_bytes(path.read_bytes())
            if mail["To"] == email:
                payload = mail.get_payload(decode=True)
                assert isinstance(payload, bytes)
                match = LINK.search(payload.decode())
                assert match is not None
                tokens.append(match.group(1))
        if len(tokens) >= count or time.monotonic() > deadline:
            assert len(tokens) >= count, f"{len(tokens)} mails to {email}, not {count}"
            return tokens
        time.sleep(0.02)


def _resend(client: TestClient, user: dict[str, Any]) -> Any:
    return client.post("/api/auth/resend-verification/", headers=user["headers"])


def test_the_mail_again_carries_a_new_link_that_verifies(api: Api, settings: Settings) -> None:
    user = api.user()
    [first] = _mailed_tokens(settings, user["email"])  # sent before it is voided: a voided link's mail is not
    response = _resend(api.client, user)
    assert (response.status_code, response.json()) == (200, {"message": "Письмо со ссылкой подтверждения отправлено."})
    second = _mailed_tokens(settings, user["email"], count=2)[-1]
    assert first != second
    superseded = api.client.post("/api/auth/verify-email/", json={"token": first})  # only the latest link verifies
    assert (superseded.status_code, superseded.json()["fields"]) == (422, {"token": [INVALID_LINK]})
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).json()["is_verified"] is False
    assert api.client.post("/api/auth/verify-email/", json={"token": second}).status_code == 200
    assert api.client.get("/api/v1/users/me/", headers=user["headers"]).json()["is_verified"] is True
    again = _resend(api.client, user)
    assert (again.status_code, again.json()) == (409, {"error": "Email уже подтвержден."})
    assert api.client.post("/api/auth/resend-verification/").status_code == 401


def test_the_mail_again_is_limited_per_user(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        user, other = api.user(), api.user()
        assert [_resend(client, user).status_code for _ in range(6)] == [200] * 5 + [429]
        refused = _resend(client, user)
        assert 1 <= int(refused.headers["retry-after"]) <= 900
        # Each resend sent a mail: none failed, as the sign-ins' "неудачных попыток" said.
        assert refused.json() == {"detail": "Слишком много писем подтверждения. Повторите позже."}
        assert _resend(client, other).status_code == 200
        clock.advance(timedelta(minutes=15, seconds=1))
        signed_in = api.login(user["username"])
        again = {"headers": {"Authorization": f"Bearer {signed_in['access']}"}}
        assert [_resend(client, again).status_code for _ in range(6)] == [200] * 5 + [429]
        # Verified meanwhile, with the latest link: no mail is of use to them, and that is what they are told.
        verified = client.post("/api/auth/verify-email/", json={"token": newest_link(settings, user["id"])})
        assert verified.status_code == 200
        refused = _resend(client, again)
        assert (refused.status_code, refused.json()) == (409, {"error": "Email уже подтвержден."})
