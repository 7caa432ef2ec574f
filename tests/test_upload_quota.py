"""Each user stores at most UGC_UPLOAD_QUOTA_BYTES in all: files and portfolio images alike.

Past the room left an upload is 413 with the quota's message and nothing is kept; room taken by
an upload that then fails is given back; removing a file gives none back (its bytes stay).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from api.app import build_app
from tests.conftest import Api, checked_client
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.wiring import runtime

QUOTA = 3000
MAX_UPLOAD = 2048
OVER_QUOTA = {"error": "Превышена квота хранилища: для этого файла у вас не осталось места."}
PNG_HEAD = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def png(size: int) -> bytes:
    return PNG_HEAD + b"\0" * (size - len(PNG_HEAD))


@pytest.fixture(scope="module")
def small_quota(settings: Settings) -> Iterator[Api]:
    """The app of this module's database with a 3,000-byte quota and 2 KiB uploads."""
    limited = dataclasses.replace(settings, upload_quota_bytes=QUOTA, max_upload_bytes=MAX_UPLOAD)
    with checked_client(build_app(lambda: runtime(limited, clock=MovableClock()))) as client:
        yield Api(client, settings)


def upload(api: Api, user: dict[str, Any], size: int) -> Any:
    return api.client.post(
        "/api/v1/files/upload/", headers=user["headers"], files={"file": ("f.bin", b"x" * size, "text/plain")}
    )


def stored(api: Api, user: dict[str, Any]) -> int:
    return int(api.client.get("/api/v1/files/", headers=user["headers"]).json()["count"])


def test_uploads_fill_the_quota_and_the_one_past_it_is_413(small_quota: Api) -> None:
    user, other = small_quota.verified_user(), small_quota.verified_user()
    assert [upload(small_quota, user, 1000).status_code for _ in range(2)] == [201, 201]
    too_big = upload(small_quota, user, 1001)
    assert (too_big.status_code, too_big.json()) == (413, OVER_QUOTA)
    assert stored(small_quota, user) == 2
    assert upload(small_quota, user, 1000).status_code == 201  # exactly the quota
    assert (upload(small_quota, user, 1).status_code, stored(small_quota, user)) == (413, 3)
    # The quota is each user's own.
    assert upload(small_quota, other, 2000).status_code == 201


def test_the_upload_limit_keeps_its_own_message_while_the_room_is_larger(small_quota: Api) -> None:
    user = small_quota.verified_user()
    response = upload(small_quota, user, MAX_UPLOAD + 1)
    assert (response.status_code, response.json()) == (413, {"error": "Слишком большой запрос."})


def test_a_streamed_body_past_the_room_is_cut_off_with_the_quota_message(small_quota: Api) -> None:
    user = small_quota.verified_user()
    assert upload(small_quota, user, 2000).status_code == 201

    def body() -> Iterator[bytes]:
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        for _ in range(12):
            yield b"y" * 100
        yield b"\r\n--xyz--\r\n"

    response = small_quota.client.post(
        "/api/v1/files/upload/",
        headers=user["headers"] | {"Content-Type": "multipart/form-data; boundary=xyz"},
        content=body(),
    )
    assert (response.status_code, response.json()) == (413, OVER_QUOTA)
    assert stored(small_quota, user) == 1


def test_removing_a_file_gives_no_room_back_because_its_bytes_stay(small_quota: Api) -> None:
    user = small_quota.verified_user()
    kept = upload(small_quota, user, 2000).json()
    assert small_quota.client.delete(f"/api/v1/files/{kept['id']}/", headers=user["headers"]).status_code == 204
    assert upload(small_quota, user, 1500).status_code == 413


def test_portfolio_images_count_and_a_failed_upload_gives_its_room_back(small_quota: Api) -> None:
    creator = small_quota.creator()
    headers = creator["headers"]
    cover = {"cover_image": ("c.png", png(1500), "image/png")}
    item = small_quota.client.post("/api/portfolio/", headers=headers, data={"title": "Логотип"}, files=cover)
    assert item.status_code == 201, item.text
    # The image is received (room taken), then the command refuses the unknown item: room given back.
    refused = small_quota.client.post(
        "/api/portfolio-images/",
        headers=headers,
        data={"portfolio_item": "987654"},
        files={"image": ("i.png", png(1500), "image/png")},
    )
    assert refused.status_code == 422 and "portfolio_item" in refused.json()["fields"], refused.text
    added = small_quota.client.post(
        "/api/portfolio-images/",
        headers=headers,
        data={"portfolio_item": str(item.json()["id"])},
        files={"image": ("i.png", png(1500), "image/png")},
    )
    assert added.status_code == 201, added.text
    # The cover and the image fill the quota: a replacement cover does not fit (the old one stays).
    replaced = small_quota.client.patch(
        f"/api/portfolio/{item.json()['id']}/", headers=headers, files={"cover_image": ("n.png", png(100), "image/png")}
    )
    assert (replaced.status_code, replaced.json()) == (413, OVER_QUOTA)
    # A change of text alone needs no room.
    renamed = small_quota.client.patch(f"/api/portfolio/{item.json()['id']}/", headers=headers, json={"title": "Знак"})
    assert renamed.status_code == 200


def test_two_uploads_racing_for_the_last_room_do_not_both_get_it(small_quota: Api) -> None:
    user = small_quota.verified_user()
    assert upload(small_quota, user, 1800).status_code == 201
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def attempt() -> None:
        barrier.wait()
        statuses.append(upload(small_quota, user, 1000).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 413]
    assert stored(small_quota, user) == 2


def test_a_retry_with_its_key_replays_the_upload_however_little_room_it_left(small_quota: Api) -> None:
    """A retry whose first answer was lost is answered from its key: its bytes are not kept again,
    so the room left, which the first upload used up, has no say; it was a 413 "quota exceeded"."""
    creator = small_quota.creator()
    file_headers = creator["headers"] | {"Idempotency-Key": "report"}
    cover_headers = creator["headers"] | {"Idempotency-Key": "cover"}

    def send_file() -> Any:
        return small_quota.client.post(
            "/api/v1/files/upload/", headers=file_headers, files={"file": ("f.bin", b"x" * 2000, "text/plain")}
        )

    def send_cover() -> Any:
        cover = {"cover_image": ("c.png", png(900), "image/png")}
        return small_quota.client.post("/api/portfolio/", headers=cover_headers, data={"title": "Знак"}, files=cover)

    for send in (send_file, send_cover):
        first, retry = send(), send()
        assert first.status_code == 201, first.text
        assert (retry.status_code, retry.json()) == (201, first.json()), retry.text
        assert retry.headers["idempotent-replayed"] == "true"
    assert stored(small_quota, creator) == 1
    over = small_quota.client.post(
        "/api/v1/files/upload/",
        headers=creator["headers"] | {"Idempotency-Key": "another"},
        files={"file": ("g.bin", b"y" * 200, "text/plain")},
    )
    assert (over.status_code, over.json()) == (413, OVER_QUOTA)
    assert stored(small_quota, creator) == 1
