"""The generic upload receiver on its own: text fields, an optional file, an `accept` predicate."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.content_types import Sniffer
from api.downloads import filename_parameters
from api.errors import EXCEPTION_HANDLERS
from api.uploads import MAX_FIELD_BYTES, display_name, is_image, receive_form, receive_upload
from ugc.platform.media import MediaStore, UnknownKey

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64


@pytest.fixture
def media(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


@pytest.fixture
def client(media: MediaStore) -> Iterator[TestClient]:
    """A route that receives an optional image `image` and answers what it got; `?fail=1` raises after."""

    async def receive(request: Request) -> Response:
        async with receive_form(
            request, media, max_bytes=4096, quota=None, file_field="image", accept=is_image
        ) as form:
            if request.query_params.get("fail"):
                raise RuntimeError("the command failed")
            file = form.file
            got: dict[str, Any] = {"fields": dict(form.fields), "file": None}
            if file is not None:
                got["file"] = {"key": file.key, "name": file.name, "type": file.content_type, "size": file.size}
        return JSONResponse(got)

    app = Starlette(routes=[Route("/", receive, methods=["POST"])], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def stored(media: MediaStore) -> list[Path]:
    return sorted(path for path in media.root.rglob("*") if path.is_file()) if media.root.exists() else []


def test_text_fields_come_with_the_file(client: TestClient, media: MediaStore) -> None:
    response = client.post(
        "/",
        data={"caption": "Закат", "order": "2"},
        files={"image": ("sunset.png", PNG, "image/jpeg"), "ignored": ("x.txt", b"not asked for")},
    )
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["fields"] == {"caption": "Закат", "order": "2"}
    assert got["file"]["type"] == "image/png" and got["file"]["name"] == "sunset.png"
    assert media.path(got["file"]["key"]).read_bytes() == PNG
    assert stored(media) == [media.path(got["file"]["key"])]


def test_the_file_may_be_absent_from_a_form(client: TestClient, media: MediaStore) -> None:
    response = client.post("/", files={"caption": (None, "только подпись")})
    assert response.json() == {"fields": {"caption": "только подпись"}, "file": None}
    assert stored(media) == []


def test_accept_refuses_other_types_and_keeps_nothing(client: TestClient, media: MediaStore) -> None:
    response = client.post("/", files={"image": ("fake.png", b"<svg onload=alert(1)>", "image/png")})
    assert response.status_code == 422
    assert response.json()["fields"] == {"image": ["Недопустимый тип файла."]}
    assert stored(media) == []


def test_bytes_are_removed_when_the_block_fails(client: TestClient, media: MediaStore) -> None:
    response = client.post("/?fail=1", files={"image": ("a.png", PNG)})
    assert response.status_code == 500
    assert stored(media) == []


def test_bytes_whose_command_stored_its_event_after_a_cancellation_are_kept(media: MediaStore) -> None:
    """Only a stop cancels a request (uvicorn, UGC_STOP_GRACE seconds after the signal), and its
    command goes on in its thread: here it stores its event once the request was cancelled. The
    block's exit discarded the bytes all the same, and the stored file had no bytes to download."""
    in_command, go_on = threading.Event(), threading.Event()
    recorded: list[str] = []
    blocking = ThreadPoolExecutor(1)

    def command(key: str) -> None:
        in_command.set()
        go_on.wait(10)
        recorded.append(key)  # the event that names the key is stored

    async def in_thread(key: str) -> None:  # as `Services.run` runs a command
        await asyncio.get_running_loop().run_in_executor(blocking, command, key)

    async def receive(request: Request) -> Response:
        async with receive_upload(request, media, max_bytes=4096, quota=None) as upload:
            await upload.file.record(in_thread(upload.file.key))
        return JSONResponse({})

    app = Starlette(routes=[Route("/", receive, methods=["POST"])])

    async def stopped_during_the_command() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            request = asyncio.ensure_future(client.post("/", files={"file": ("a.txt", b"hello")}))
            while not in_command.is_set():
                await asyncio.sleep(0.01)
            request.cancel()
            await asyncio.sleep(0.05)
            go_on.set()
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(stopped_during_the_command())
    blocking.shutdown(wait=True)
    [key] = recorded
    with media.open(key) as file:
        assert file.read() == b"hello"
    assert stored(media) == [media.path(key)]


def test_a_text_field_is_bounded(client: TestClient, media: MediaStore) -> None:
    response = client.post("/", files={"caption": (None, "я" * MAX_FIELD_BYTES), "image": ("a.png", PNG)})
    assert response.status_code == 413
    assert stored(media) == []


def test_the_file_is_bounded(client: TestClient, media: MediaStore) -> None:
    response = client.post("/", files={"image": ("a.png", PNG + b"\0" * 4096)})
    assert response.status_code == 413 and response.json() == {"error": "Слишком большой запрос."}
    assert stored(media) == []


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\anna\\фото.jpg", "фото.jpg"),
        ("a\x00b\x1f\x7fc.txt", "abc.txt"),
        ("\u200bhidden\u202e.txt", "hidden.txt"),
        ("  spaced  ", "spaced"),
        ("...", "file"),
        (None, "file"),
        ("x" * 300 + ".jpeg", "x" * 250 + ".jpeg"),
        ("y" * 300, "y" * 255),
        ("Cafe\u0301.txt", "Café.txt"),
    ],
)
def test_display_name(raw: str | None, shown: str) -> None:
    assert display_name(raw) == shown


def test_media_keys_are_random_and_paths_stay_inside(media: MediaStore) -> None:
    incoming = media.begin()
    incoming.write(b"abc")
    key = incoming.commit()
    assert media.exists(key) and media.path(key).is_relative_to(media.root)
    with media.open(key) as file:
        assert file.read() == b"abc"
    assert media.begin().key != key
    for bad in ("../../etc/passwd", "", "a" * 31, "a/" + "b" * 30, ".." + "c" * 30, key + "x"):
        assert not media.exists(bad)
        with pytest.raises(UnknownKey):
            media.path(bad)
    with pytest.raises(UnknownKey):
        media.open("A" * 32)


def test_a_discarded_incoming_file_leaves_nothing(media: MediaStore) -> None:
    incoming = media.begin()
    incoming.write(b"partial")
    incoming.discard()
    incoming.discard()
    assert stored(media) == []
    committed = media.begin()
    committed.write(b"whole")
    committed.commit()
    committed.discard()
    assert stored(media) == []


@pytest.mark.parametrize(
    ("chunks", "sniffed"),
    [
        ([PNG[:3], PNG[3:]], "image/png"),
        (["привет".encode()[:3], "привет".encode()[3:]], "text/plain"),
        ([b"ok", b"\xd0"], "application/octet-stream"),
        ([b"\x00"], "application/octet-stream"),
    ],
)
def test_sniffing_across_chunks(chunks: list[bytes], sniffed: str) -> None:
    sniffer = Sniffer()
    for chunk in chunks:
        sniffer.feed(chunk)
    assert sniffer.finish() == sniffed


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("report.pdf", "filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("café.txt", "filename=\"cafe.txt\"; filename*=UTF-8''caf%C3%A9.txt"),
        ('a"b\\c\r\n.txt', "filename=\"a_b_c__.txt\"; filename*=UTF-8''a%22b%5Cc%0D%0A.txt"),
        ("фото.jpg", "filename=\"____.jpg\"; filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE.jpg"),
        ("ж", "filename=\"_\"; filename*=UTF-8''%D0%B6"),
        ("..", "filename=\"file\"; filename*=UTF-8''.."),
    ],
)
def test_content_disposition_parameters_cannot_break_the_header(name: str, parameters: str) -> None:
    assert filename_parameters(name) == parameters


def test_a_media_store_the_file_system_refuses_is_503_not_500(tmp_path: Path) -> None:
    """A media directory that cannot be made or written (here its parent is a file; a full or
    read-only disk alike) answered 500: it is no bug, and no fault of the client's."""
    (tmp_path / "a-file").write_text("")
    refused = MediaStore(tmp_path / "a-file" / "media")

    async def receive(request: Request) -> Response:
        async with receive_form(request, refused, max_bytes=4096, quota=None, file_field="image", accept=is_image):
            return JSONResponse({})

    app = Starlette(routes=[Route("/", receive, methods=["POST"])], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/", files={"image": ("a.png", PNG, "image/png")})
    assert answer.status_code == 503, answer.text
    assert answer.json() == {"detail": "Хранилище файлов временно недоступно, повторите запрос позже."}
    assert answer.headers["retry-after"]
