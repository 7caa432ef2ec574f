"""Conversations over HTTP: one per pair, participants only, messages newest first, unread counts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands.messaging import MessagingCommands
from readmodels import messaging as read
from readmodels.pages import PageRequest
from tests.conftest import BAD_BODY_IDS, Api, refused_id
from tests.plans import relations_read, stored_by_hand, work

CONVERSATION_KEYS = {
    "id",
    "participants",
    "other_participant",
    "last_message",
    "unread_count",
    "created_at",
    "updated_at",
}


def start(api: Api, who: dict[str, Any], recipient: int, expect: int = 201) -> dict[str, Any]:
    response = api.client.post("/api/v1/conversations/", headers=who["headers"], json={"recipient_id": recipient})
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


def say(api: Api, who: dict[str, Any], conversation: int, text: str, expect: int = 201) -> dict[str, Any]:
    response = api.client.post(
        f"/api/v1/conversations/{conversation}/messages/", headers=who["headers"], json={"message": text}
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


def mine(api: Api, who: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = api.client.get("/api/v1/conversations/", headers=who["headers"], params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def messages(api: Api, who: dict[str, Any], conversation: int, **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/api/v1/conversations/{conversation}/messages/", headers=who["headers"], params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def party(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "username": user["username"], "avatar": None}


def test_a_pair_has_one_conversation_whoever_starts_it(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    created = start(api, anna, boris["id"])
    assert set(created) == CONVERSATION_KEYS
    assert created["participants"] == [party(anna), party(boris)]
    assert created["other_participant"] == party(boris)
    assert created["last_message"] is None and created["unread_count"] == 0
    datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    again = start(api, anna, boris["id"], expect=200)
    assert again["id"] == created["id"]
    reverse = start(api, boris, anna["id"], expect=200)
    assert reverse["id"] == created["id"] and reverse["other_participant"] == party(anna)


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"recipient_id": "x"}, 422), ({"recipient_id": 0}, 422), ({"recipient_id": 999999999}, 422)],
)
def test_starting_refuses_bad_recipients(api: Api, body: dict[str, Any], status: int) -> None:
    anna = api.verified_user()
    response = api.client.post("/api/v1/conversations/", headers=anna["headers"], json=body)
    assert response.status_code == status, response.text
    if body.get("recipient_id") == 999999999:  # an unknown reference in a field: 422 (DESIGN), not 404
        assert response.json()["fields"] == {"recipient_id": ["Пользователь не найден."]}
    if status == 422:
        assert "recipient_id" in response.json()["fields"]
    else:
        assert response.json() == {"detail": "Страница не найдена."}


@pytest.mark.parametrize("bad", BAD_BODY_IDS)
def test_a_recipient_id_is_a_whole_positive_json_number(api: Api, bad: Any) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    response = api.client.post("/api/v1/conversations/", headers=anna["headers"], json={"recipient_id": bad})
    assert (response.status_code, response.json()) == (422, refused_id("recipient_id"))
    assert api.client.get("/api/v1/conversations/", headers=anna["headers"]).json()["count"] == 0
    assert start(api, anna, boris["id"])["other_participant"] == party(boris)


def test_nobody_converses_with_themselves(api: Api) -> None:
    anna = api.verified_user()
    response = api.client.post("/api/v1/conversations/", headers=anna["headers"], json={"recipient_id": anna["id"]})
    assert response.status_code == 422
    assert response.json() == {
        "error": "Ошибка валидации данных.",
        "fields": {"recipient_id": ["Нельзя начать диалог с самим собой."]},
    }


def test_malformed_bodies_are_400(api: Api) -> None:
    anna = api.verified_user()
    response = api.client.post(
        "/api/v1/conversations/", headers=anna["headers"] | {"Content-Type": "application/json"}, content=b"{"
    )
    assert response.status_code == 400 and "error" in response.json()
    response = api.client.post("/api/v1/conversations/", headers=anna["headers"], json=[1])
    assert response.status_code == 400


def test_everything_needs_a_token(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    for method, path in [
        ("GET", "/api/v1/conversations/"),
        ("POST", "/api/v1/conversations/"),
        ("GET", f"/api/v1/conversations/{conversation}/messages/"),
        ("POST", f"/api/v1/conversations/{conversation}/messages/"),
        ("POST", f"/api/v1/conversations/{conversation}/mark-as-read/"),
    ]:
        response = api.client.request(method, path, json={"message": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": "Учетные данные не были предоставлены."}


def test_messages_come_back_in_the_websocket_shape(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    sent = say(api, anna, conversation, "  Привет!  ")
    assert set(sent) == {"id", "sender", "message", "timestamp"}
    assert sent["sender"] == party(anna) and sent["message"] == "Привет!"
    assert sent["timestamp"].endswith("Z")
    listed = messages(api, boris, conversation)
    assert listed["count"] == 1 and listed["results"] == [sent]


def test_message_text_is_stripped_and_bounded(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    for text, field_message in [
        ("", "Сообщение не может быть пустым."),
        ("   \n ", "Сообщение не может быть пустым."),
        ("я" * 4001, "Убедитесь, что это значение содержит не более 4000 символов."),
    ]:
        refused = say(api, anna, conversation, text, expect=422)
        assert refused["fields"] == {"message": [field_message]}
    assert say(api, anna, conversation, " " + "я" * 4000 + " ")["message"] == "я" * 4000
    wrong_type = api.client.post(
        f"/api/v1/conversations/{conversation}/messages/", headers=anna["headers"], json={"message": 5}
    )
    assert wrong_type.status_code == 422 and "message" in wrong_type.json()["fields"]
    assert messages(api, anna, conversation)["count"] == 1


def test_only_participants_see_or_write(api: Api) -> None:
    anna, boris, eve = api.verified_user(), api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    say(api, anna, conversation, "Только для Бориса")
    not_found = {"detail": "Страница не найдена."}
    for path in (f"/api/v1/conversations/{conversation}/messages/", "/api/v1/conversations/999999999/messages/"):
        response = api.client.get(path, headers=eve["headers"])
        assert response.status_code == 404 and response.json() == not_found
        response = api.client.post(path, headers=eve["headers"], json={"message": "Подслушал"})
        assert response.status_code == 404 and response.json() == not_found
    response = api.client.post(f"/api/v1/conversations/{conversation}/mark-as-read/", headers=eve["headers"])
    assert response.status_code == 404
    assert mine(api, eve)["count"] == 0
    # A blank text is a 422 even where the caller would get a 404 (the body is checked first).
    say(api, eve, conversation, " ", expect=422)


def test_messages_are_paginated_newest_first(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    sent = [say(api, anna if n % 2 else boris, conversation, f"Сообщение {n}")["id"] for n in range(5)]
    first = messages(api, anna, conversation, page_size=2)
    assert first["count"] == 5 and [m["id"] for m in first["results"]] == sent[::-1][:2]
    assert first["next"] is not None and first["previous"] is None
    last = messages(api, anna, conversation, page_size=2, page=3)
    assert [m["id"] for m in last["results"]] == [sent[0]] and last["next"] is None
    response = api.client.get(
        f"/api/v1/conversations/{conversation}/messages/", headers=anna["headers"], params={"page": 4, "page_size": 2}
    )
    assert response.status_code == 404


def test_messages_are_listed_in_store_order_which_their_numbers_may_not_follow(api: Api) -> None:
    """Of two messages sent at once, the one numbered first may be stored second: the list shows the
    order they were stored in (log positions), the order the socket pushed them in. (Two rows written
    here as such a race leaves them, and removed again: no command draws those numbers.)"""
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    first = say(api, anna, conversation, "первое")["id"]
    raced = (10**15 + 1, 10**15 + 2)
    db = api.client.app.state.services.db  # type: ignore[attr-defined]
    with db.transaction(write=True) as cur:
        position = cur.execute("SELECT MAX(position) AS p FROM messages").fetchone()["p"]
        for number, stored in zip(raced, (position + 2, position + 1), strict=True):
            cur.execute(
                "INSERT INTO messages (id, conversation_id, position, sender_id, sender_username, text, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (number, conversation, stored, boris["id"], boris["username"], "гонка", datetime.now()),
            )
    try:
        assert [m["id"] for m in messages(api, anna, conversation)["results"]] == [raced[0], raced[1], first]
    finally:
        with db.transaction(write=True) as cur:
            cur.execute("DELETE FROM messages WHERE id IN (%s, %s)", raced)


def test_the_list_shows_the_most_recent_activity_first(api: Api) -> None:
    anna, boris, vera, gleb = api.verified_user(), api.verified_user(), api.verified_user(), api.verified_user()
    with_boris = start(api, anna, boris["id"])["id"]
    with_vera = start(api, vera, anna["id"])["id"]
    with_gleb = start(api, anna, gleb["id"])["id"]
    assert [c["id"] for c in mine(api, anna)["results"]] == [with_gleb, with_vera, with_boris]
    last = say(api, boris, with_boris, "Я тут")
    listed = mine(api, anna)
    assert listed["count"] == 3
    assert [c["id"] for c in listed["results"]] == [with_boris, with_gleb, with_vera]
    top = listed["results"][0]
    assert top["other_participant"] == party(boris)
    assert top["last_message"] == last
    assert top["unread_count"] == 1
    assert [c["id"] for c in mine(api, anna, page_size=1, page=2)["results"]] == [with_gleb]
    assert [c["id"] for c in mine(api, boris)["results"]] == [with_boris]


def test_the_lists_totals_are_kept_not_counted(api: Api) -> None:
    """A user's conversations and a conversation's messages are counted by the projection as they are
    stored: a page's total reads one row of `conversation_counts` or `message_counts`, where a COUNT
    read every message of the conversation (30,000: 831 buffers) or conversation of the user."""
    anna, boris, vera = api.verified_user(), api.verified_user(), api.verified_user()
    with_boris = start(api, anna, boris["id"])["id"]
    start(api, vera, anna["id"])
    start(api, boris, anna["id"], expect=200)
    for n in range(3):
        say(api, anna if n % 2 else boris, with_boris, f"Сообщение {n}")
    assert (mine(api, anna)["count"], mine(api, boris)["count"], mine(api, vera)["count"]) == (2, 1, 1)
    assert mine(api, api.verified_user())["count"] == 0
    assert messages(api, boris, with_boris)["count"] == 3
    db = api.client.app.state.services.db  # type: ignore[attr-defined]
    assert relations_read(db, *read.list_conversations(anna["id"], PageRequest(1, 20)).count) == {"conversation_counts"}
    assert relations_read(db, *read.list_messages(with_boris, PageRequest(1, 20)).count) == {"message_counts"}


def test_a_page_of_conversations_reads_the_rows_it_shows_however_many_there_are(backend: str, tmp_path: Path) -> None:
    """A page of a user's conversations walks each side's index only as far as the page reaches: a user
    with 1,500 conversations costs what one with 300 does. The union of both sides was sorted whole
    (5,000 conversations: 1,001 buffers, every one of them read). The rows are stored by hand: it is
    the read that is tested."""
    with stored_by_hand(
        backend,
        tmp_path,
        (
            "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 6000) "
            "INSERT INTO conversations (id, uuid, user_a, username_a, user_b, username_b, activity, "
            "created_at, updated_at) SELECT n, 'c' || n, "
            "CASE WHEN n <= 300 THEN 1 WHEN n <= 1800 THEN 2 ELSE 1000 + n END, 'a', "
            "CASE WHEN n - n / 2 * 2 = 0 THEN 100000 + n ELSE 200000 + n END, 'b', n, %s, %s FROM numbers",
            (datetime.now(UTC), datetime.now(UTC)),
        ),
    ) as db:
        few, many = (read.list_conversations(user, PageRequest(1, 20)).statements[1] for user in (1, 2))
        assert work(db.url, [many], "conversations") <= work(db.url, [few], "conversations")


def test_unread_counts_follow_messages_and_read_marks(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]

    def unread(who: dict[str, Any]) -> int:
        count: int = mine(api, who)["results"][0]["unread_count"]
        return count

    say(api, anna, conversation, "Раз")
    say(api, anna, conversation, "Два")
    assert (unread(anna), unread(boris)) == (0, 2)
    marked = api.client.post(f"/api/v1/conversations/{conversation}/mark-as-read/", headers=boris["headers"])
    assert marked.status_code == 200, marked.text
    assert marked.json()["id"] == conversation and marked.json()["unread_count"] == 0
    assert (unread(anna), unread(boris)) == (0, 0)
    say(api, boris, conversation, "Прочитал")
    say(api, anna, conversation, "Три")
    assert (unread(anna), unread(boris)) == (1, 1)
    # Reading is a write: a GET never changes the count.
    messages(api, boris, conversation)
    assert unread(boris) == 1
    api.client.post(f"/api/v1/conversations/{conversation}/mark-as-read/", headers=anna["headers"])
    assert (unread(anna), unread(boris)) == (0, 1)


def test_two_messages_into_one_conversation_both_land(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    conversation = start(api, anna, boris["id"])["id"]
    commands: MessagingCommands = api.client.app.state.services.messaging  # type: ignore[attr-defined]
    barrier = threading.Barrier(8)
    sent: list[int] = []
    failures: list[BaseException] = []

    def send(n: int) -> None:
        barrier.wait()
        try:
            sent.append(commands.send_message(conversation, anna["id"] if n % 2 else boris["id"], f"№{n}").message_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(set(sent)) == 8
    say(api, anna, conversation, "И ещё одно")
    assert messages(api, anna, conversation)["count"] == 9


def test_racing_starts_of_one_pair_end_in_one_conversation(api: Api) -> None:
    anna, boris = api.verified_user(), api.verified_user()
    commands: MessagingCommands = api.client.app.state.services.messaging  # type: ignore[attr-defined]
    barrier = threading.Barrier(6)
    results: list[tuple[int, bool]] = []

    def begin(n: int) -> None:
        barrier.wait()
        first, second = (anna["id"], boris["id"]) if n % 2 else (boris["id"], anna["id"])
        started = commands.start_conversation(first, second)
        results.append((started.conversation_id, started.created))

    threads = [threading.Thread(target=begin, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len({number for number, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert start(api, anna, boris["id"], expect=200)["id"] == results[0][0]
