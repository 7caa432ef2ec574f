"""Private files: upload, list, remove, download; sniffed types, safe names, the size limit."""

from __future__ import annotations

import dataclasses
import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.app import build_app
from readmodels.files import list_own_files
from readmodels.pages import PageRequest
from tests.conftest import Api, checked_client
from tests.plans import relations_read, stored_by_hand, work
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.wiring import runtime

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64
SMALL_LIMIT = 1024
UNSUPPORTED_CODING = "Тело запроса в кодировке Content-Encoding не принимается; отправьте его без сжатия (identity)."
TRUNCATED = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ncut'


def upload(api: Api, user: dict[str, Any], content: bytes, name: str = "note.txt", declared: str = "text/plain") -> Any:
    return api.client.post("/api/v1/files/upload/", headers=user["headers"], files={"file": (name, content, declared)})


def uploaded(api: Api, user: dict[str, Any], content: bytes = b"hello", **kwargs: Any) -> dict[str, Any]:
    response = upload(api, user, content, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_files(settings: Settings) -> list[Path]:
    """Every file under the media directory, finished or not."""
    return sorted(path for path in settings.media_dir.rglob("*") if path.is_file())


def test_upload_answers_exactly_the_spec_shape(api: Api) -> None:
    user = api.verified_user()
    response = upload(api, user, "Привет, мир".encode(), name="привет.txt")
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "привет.txt",
        "url": f"{api.settings.public_url}/api/v1/files/{body['id']}/download/",
        "size": len("Привет, мир".encode()),
        "content_type": "text/plain",
        "uploaded_at": body["uploaded_at"],
    }
    assert isinstance(body["id"], int) and body["id"] > 0
    assert ISO_UTC.match(body["uploaded_at"])


def test_a_download_serves_byte_ranges_and_ignores_a_range_it_cannot_read(api: Api) -> None:
    """RFC 9110: a part for a readable `Range`, the whole file for one it cannot read (not Starlette's
    plain-text 400), 416 with the size and a JSON body for one that starts past the end."""
    user = api.verified_user()
    body = uploaded(api, user, b"0123456789")
    download = f"/api/v1/files/{body['id']}/download/"
    part = api.client.get(download, headers=user["headers"] | {"Range": "bytes=2-4"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, b"234", "bytes 2-4/10")
    for unreadable in ("bytes=4-2", "items=0-1", "bytes", "bytes=abc"):
        whole = api.client.get(download, headers=user["headers"] | {"Range": unreadable})
        assert (whole.status_code, whole.content) == (200, b"0123456789"), unreadable
    past = api.client.get(download, headers=user["headers"] | {"Range": "bytes=10-20"})
    assert past.status_code == 416 and past.headers["content-range"] == "bytes */10"
    assert past.json() == {"error": "Запрошенный диапазон байтов начинается за концом файла."}


def test_a_range_set_serves_its_satisfiable_ranges(api: Api) -> None:
    """RFC 9110 14.1.2: a set of ranges is unsatisfiable (416) only when every one of them is; it
    answered 416 when any one started past the end, or asked for the last 0 bytes (`-0`)."""
    user = api.verified_user()
    download = f"/api/v1/files/{uploaded(api, user, b'0123456789')['id']}/download/"
    for wanted in ("bytes=0-0,-0", "bytes=-0,0-0", "bytes=0-0,10-20", "bytes=0-0, 12-"):
        part = api.client.get(download, headers=user["headers"] | {"Range": wanted})
        assert (part.status_code, part.content, part.headers["content-range"]) == (206, b"0", "bytes 0-0/10"), wanted
    for wanted in ("bytes=-0", "bytes=10-20,-0", "bytes=10-,11-12"):
        past = api.client.get(download, headers=user["headers"] | {"Range": wanted})
        assert (past.status_code, past.headers["content-range"]) == (416, "bytes */10"), wanted


def test_a_range_under_a_stale_if_range_is_ignored_even_past_the_end(api: Api) -> None:
    """RFC 9110 13.1.5: when `If-Range` does not match, the Range is ignored and the whole file sent;
    it answered 416 when that Range started past the end."""
    user = api.verified_user()
    download = f"/api/v1/files/{uploaded(api, user, b'0123456789')['id']}/download/"
    current = api.client.get(download, headers=user["headers"]).headers["etag"]
    for wanted in ("bytes=2-4", "bytes=10-20"):
        stale = api.client.get(download, headers=user["headers"] | {"Range": wanted, "If-Range": '"other"'})
        assert (stale.status_code, stale.content) == (200, b"0123456789"), wanted
    resumed = api.client.get(download, headers=user["headers"] | {"Range": "bytes=2-4", "If-Range": current})
    assert (resumed.status_code, resumed.content) == (206, b"234")


def test_two_range_headers_are_ignored_whatever_they_ask(api: Api) -> None:
    """RFC 9110 §5.3: `Range` is no list, so a request may carry it once; of two lines the first was
    served (a 206 or a 416), where a cache in front may have acted on the other. Neither is taken: the
    whole file, as for any `Range` that cannot be read (§14.2 lets a server ignore it)."""
    user = api.verified_user()
    download = f"/api/v1/files/{uploaded(api, user, b'0123456789')['id']}/download/"
    for first, second in (("bytes=2-4", "bytes=6-8"), ("bytes=10-20", "bytes=2-4"), ("bytes=2-4", "bytes=2-4")):
        headers = [*user["headers"].items(), ("Range", first), ("Range", second)]
        whole = api.client.get(download, headers=headers)
        assert (whole.status_code, whole.content) == (200, b"0123456789"), (first, second)
        assert "content-range" not in whole.headers


@pytest.mark.parametrize(
    "since",
    ["Tue, 01 Jan 10000 00:00:00 GMT", "Fri, 31 Dec 99999 23:59:59 GMT", "Sat, 01 Jan 0000 00:00:00 GMT"],
    ids=["year-10000", "year-99999", "year-0"],
)
def test_an_if_modified_since_past_any_calendar_is_ignored(api: Api, since: str) -> None:
    """RFC 9110 §13.1.3: a value that is no valid HTTP-date (its year has four digits) is ignored; a
    year past 9999 was read, and the server answered 500 converting it."""
    user = api.verified_user()
    download = f"/api/v1/files/{uploaded(api, user, b'0123456789')['id']}/download/"
    whole = api.client.get(download, headers=user["headers"] | {"If-Modified-Since": since})
    assert (whole.status_code, whole.content) == (200, b"0123456789")


def test_the_stored_key_is_random_and_not_the_uploaded_name(api: Api) -> None:
    user = api.verified_user()
    before = set(stored_files(api.settings))
    uploaded(api, user, b"secret", name="my-secret-name.txt")
    (new,) = set(stored_files(api.settings)) - before
    assert "secret" not in new.name and new.suffix == ""
    assert new.read_bytes() == b"secret"
    assert new.resolve().is_relative_to(api.settings.media_dir.resolve())


def test_the_owner_lists_own_files_newest_first_with_pagination(api: Api) -> None:
    user, other = api.verified_user(), api.verified_user()
    ids = [uploaded(api, user, f"file {n}".encode(), name=f"{n}.txt")["id"] for n in range(3)]
    uploaded(api, other, b"not yours")
    first = api.client.get("/api/v1/files/?page_size=2", headers=user["headers"]).json()
    assert first["count"] == 3 and first["previous"] is None and first["next"]
    assert [item["id"] for item in first["results"]] == ids[::-1][:2]
    assert set(first["results"][0]) == {"id", "name", "url", "size", "content_type", "uploaded_at"}
    second = api.client.get(first["next"], headers=user["headers"]).json()
    assert [item["id"] for item in second["results"]] == ids[:1] and second["next"] is None
    assert api.client.get("/api/v1/files/?page=3&page_size=2", headers=user["headers"]).status_code == 404


def test_the_owners_total_is_kept_not_counted(api: Api) -> None:
    """Uploads and removals move the owner's count in `file_counts`; a page's total reads that row,
    not the owner's files (a COUNT read every one, removed ones too: 10,000, 400 buffers)."""
    user, other = api.verified_user(), api.verified_user()
    kept, removed = uploaded(api, user, b"one"), uploaded(api, user, b"two")
    uploaded(api, other, b"three")
    assert api.client.delete(f"/api/v1/files/{removed['id']}/", headers=user["headers"]).status_code == 204
    listed = api.client.get("/api/v1/files/", headers=user["headers"]).json()
    assert (listed["count"], [f["id"] for f in listed["results"]]) == (1, [kept["id"]])
    assert api.client.get("/api/v1/files/", headers=api.verified_user()["headers"]).json()["count"] == 0
    db = api.client.app.state.services.db  # type: ignore[attr-defined]
    assert relations_read(db, *list_own_files(user["id"], PageRequest(1, 20)).count) == {"file_counts"}


def test_a_page_of_files_reads_the_listed_ones_not_those_removed_after_them(backend: str, tmp_path: Path) -> None:
    """An owner whose 3,000 newest files are removed, above 10 still listed, reads a page as one with 10
    files alone. The index of the owner's files held removed ones too, so the page walked every removed
    file above the listed ones (on PostgreSQL 99,990 for 10 of 100,000 files). The rows are stored by
    hand: it is the read that is tested."""
    with stored_by_hand(
        backend,
        tmp_path,
        (
            "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 3020) "
            "INSERT INTO files (id, uuid, owner_id, key, name, size, content_type, uploaded_at, removed) "
            "SELECT n, 'f' || n, CASE WHEN n <= 3010 THEN 1 ELSE 2 END, 'k' || n, 'n', 1, 'text/plain', %s, "
            "n > 10 AND n <= 3010 FROM numbers",
            (datetime.now(UTC),),
        ),
        ("INSERT INTO file_counts VALUES (1, 10), (2, 10)", ()),
    ) as db:
        pruned = list_own_files(1, PageRequest(1, 20))
        with db.read() as cur:
            assert [int(row["id"]) for row in cur.execute(*pruned.statements[1]).fetchall()] == list(range(10, 0, -1))
        alone = list_own_files(2, PageRequest(1, 20)).statements[1]
        assert work(db.url, [pruned.statements[1]], "files") <= 2 * work(db.url, [alone], "files")


def test_the_owner_downloads_the_bytes_with_safe_headers(api: Api) -> None:
    user = api.verified_user()
    content = "Отчёт за июнь\n".encode()
    body = uploaded(api, user, content, name="отчёт июнь.txt")
    response = api.client.get(body["url"], headers=user["headers"])
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"] == (
        'attachment; filename="_____ ____.txt"; '
        "filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%20%D0%B8%D1%8E%D0%BD%D1%8C.txt"
    )


def test_files_are_private_to_their_owner(api: Api) -> None:
    owner, stranger = api.verified_user(), api.verified_user()
    body = uploaded(api, owner, b"private")
    assert api.client.get(body["url"]).status_code == 401
    download = api.client.get(body["url"], headers=stranger["headers"])
    assert download.status_code == 404 and download.json() == {"detail": "Страница не найдена."}
    assert api.client.delete(f"/api/v1/files/{body['id']}/", headers=stranger["headers"]).status_code == 404
    assert api.client.get("/api/v1/files/", headers=stranger["headers"]).json()["count"] == 0
    # The stranger's attempt changed nothing for the owner.
    assert api.client.get(body["url"], headers=owner["headers"]).content == b"private"


def test_every_route_needs_a_token(api: Api) -> None:
    assert api.client.post("/api/v1/files/upload/", files={"file": ("a.txt", b"x")}).status_code == 401
    assert api.client.get("/api/v1/files/").status_code == 401
    assert api.client.delete("/api/v1/files/1/").status_code == 401
    assert api.client.get("/api/v1/files/1/download/").status_code == 401


def test_removing_hides_the_file_from_its_owner_but_keeps_the_bytes(api: Api) -> None:
    user = api.verified_user()
    body = uploaded(api, user, b"evidence")
    before = stored_files(api.settings)
    response = api.client.delete(f"/api/v1/files/{body['id']}", headers=user["headers"])
    assert response.status_code == 204 and response.content == b""
    assert api.client.get("/api/v1/files/", headers=user["headers"]).json()["count"] == 0
    assert api.client.get(body["url"], headers=user["headers"]).status_code == 404
    assert api.client.delete(f"/api/v1/files/{body['id']}/", headers=user["headers"]).status_code == 404
    # An order the file was delivered in still needs its bytes.
    assert stored_files(api.settings) == before


def test_an_unknown_file_is_404(api: Api) -> None:
    user = api.verified_user()
    assert api.client.delete("/api/v1/files/999999/", headers=user["headers"]).status_code == 404
    assert api.client.get("/api/v1/files/999999/download/", headers=user["headers"]).status_code == 404


@pytest.mark.parametrize(
    ("content", "declared", "sniffed"),
    [
        (PNG, "image/jpeg", "image/png"),
        (b"GIF89a" + b"\0" * 32, "text/plain", "image/gif"),
        (b"%PDF-1.7\n" + b"\0" * 32, "image/png", "application/pdf"),
        ("простой текст".encode(), "application/pdf", "text/plain"),
        (b"<script>alert(1)</script>", "text/html", "text/plain"),
        (b"\xff\xfe\x00binary", "text/plain", "application/octet-stream"),
        (b"text\x00with nul", "text/plain", "application/octet-stream"),
    ],
)
def test_the_content_type_comes_from_the_bytes_not_the_client(
    api: Api, content: bytes, declared: str, sniffed: str
) -> None:
    user = api.verified_user()
    body = uploaded(api, user, content, name="photo.jpg", declared=declared)
    assert body["content_type"] == sniffed
    assert api.client.get(body["url"], headers=user["headers"]).headers["content-type"].split(";")[0] == sniffed


def test_an_empty_file_is_refused(api: Api) -> None:
    user = api.verified_user()
    before = stored_files(api.settings)
    response = upload(api, user, b"")
    assert response.status_code == 422
    assert response.json() == {"error": "Ошибка валидации данных.", "fields": {"file": ["Файл пуст."]}}
    assert stored_files(api.settings) == before


@pytest.mark.parametrize(
    ("uploaded_name", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("..", "file"),
        ("", "file"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
    ],
)
def test_the_uploaded_name_is_only_a_sanitised_display_name(api: Api, uploaded_name: str, shown: str) -> None:
    user = api.verified_user()
    body = uploaded(api, user, b"data", name=uploaded_name)
    assert body["name"] == shown
    listed = api.client.get("/api/v1/files/", headers=user["headers"]).json()["results"][0]
    assert listed["name"] == shown


def test_a_missing_file_field_is_422(api: Api) -> None:
    user = api.verified_user()
    response = api.client.post("/api/v1/files/upload/", headers=user["headers"], files={"other": ("a.txt", b"x")})
    assert response.status_code == 422
    assert response.json()["fields"] == {"file": ["Обязательное поле."]}
    only_text = api.client.post(
        "/api/v1/files/upload/",
        headers=user["headers"] | {"Content-Type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="caption"\r\n\r\nx\r\n--xyz--\r\n',
    )
    assert only_text.status_code == 422 and only_text.json()["fields"] == {"file": ["Обязательное поле."]}
    empty_input = api.client.post(  # a browser's file input left empty: no file chosen
        "/api/v1/files/upload/",
        headers=user["headers"] | {"Content-Type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\n\r\n--xyz--\r\n',
    )
    assert empty_input.status_code == 422 and empty_input.json()["fields"] == {"file": ["Обязательное поле."]}
    assert api.client.get("/api/v1/files/", headers=user["headers"]).json()["count"] == 0


def test_two_files_in_the_field_are_422_and_neither_is_kept(api: Api) -> None:
    user = api.verified_user()
    before = stored_files(api.settings)
    response = api.client.post(
        "/api/v1/files/upload/",
        headers=user["headers"],
        files=[("file", ("a.txt", b"one")), ("file", ("b.txt", b"two"))],
    )
    assert response.status_code == 422 and response.json()["fields"] == {"file": ["Отправьте один файл."]}
    assert stored_files(api.settings) == before


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("multipart/form-data", b"no boundary"),
        # Cut off inside the file, before the closing boundary.
        ("multipart/form-data; boundary=xyz", TRUNCATED),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Type: text/plain\r\n\r\nno name\r\n--xyz--\r\n"),
    ],
)
def test_a_body_that_is_not_well_formed_multipart_is_400(api: Api, content_type: str, content: bytes) -> None:
    user = api.verified_user()
    before = stored_files(api.settings)
    headers = user["headers"] | ({"Content-Type": content_type} if content_type else {})
    response = api.client.post("/api/v1/files/upload/", headers=headers, content=content)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert stored_files(api.settings) == before


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/json", b'{"file": "x"}'),
        ("", b"file=x"),
        ("", b""),
        ("text/plain", b"x"),
        ("multipart/mixed", b""),
    ],
)
def test_a_body_that_is_not_multipart_is_415_with_what_is_taken(api: Api, content_type: str, content: bytes) -> None:
    """RFC 9110 §15.5.16: a body in a media type the endpoint does not take is 415 (it was 400), as a
    JSON endpoint's is; a body without a Content-Type is no form."""
    user = api.verified_user()
    before = stored_files(api.settings)
    headers = user["headers"] | ({"Content-Type": content_type} if content_type else {})
    response = api.client.post("/api/v1/files/upload/", headers=headers, content=content)
    assert response.status_code == 415, response.text
    assert response.json() == {"error": "Ожидается тело запроса в формате multipart/form-data."}
    assert response.headers["accept"] == response.headers["accept-post"] == "multipart/form-data"
    assert stored_files(api.settings) == before


@pytest.mark.parametrize("coding", ["gzip", "br", "x-foo", "identity, gzip", "GZIP"])
def test_a_body_in_a_content_coding_not_decoded_here_is_415_and_nothing_is_stored(api: Api, coding: str) -> None:
    """RFC 9110 §15.5.16: the body is not read as if it were plain; `Accept-Encoding` says what is taken."""
    user = api.verified_user()
    before = stored_files(api.settings)
    content, content_type = _multipart(b"hello")
    headers = user["headers"] | {"Content-Type": content_type, "Content-Encoding": coding}
    response = api.client.post("/api/v1/files/upload/", headers=headers, content=gzip.compress(content))
    assert response.status_code == 415, response.text
    assert response.json() == {"error": UNSUPPORTED_CODING}
    assert response.headers["accept-encoding"] == "identity"
    assert stored_files(api.settings) == before
    assert api.client.get("/api/v1/files/", headers=user["headers"]).json()["count"] == 0


def test_a_body_in_the_identity_coding_is_read_as_it_is(api: Api) -> None:
    user = api.verified_user()
    content, content_type = _multipart(b"hello")
    headers = user["headers"] | {"Content-Type": content_type, "Content-Encoding": "identity"}
    response = api.client.post("/api/v1/files/upload/", headers=headers, content=content)
    assert response.status_code == 201 and response.json()["size"] == len(b"hello")


@pytest.mark.parametrize(
    ("disposition", "shown"),
    [
        (b"filename*=UTF-8''%D0%BE%D1%82%D1%87%D0%B5%D1%82.txt", "отчет.txt"),
        (b"filename*=utf-8'ru'%D0%BE%D1%82%D1%87%D0%B5%D1%82.txt", "отчет.txt"),
        (b"filename*=ISO-8859-1''%A3%20rates.txt", "£ rates.txt"),
        (b"filename*0*=UTF-8''%D0%BE%D1%82; filename*1=.txt", "от.txt"),
        # The plain name stays the one read when both come (RFC 7578 §4.2 has senders send it).
        (b"filename=\"plain.txt\"; filename*=UTF-8''%D0%BE.txt", "plain.txt"),
        (b"filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        # Unreadable: a charset name with a NUL (the codec lookup raised ValueError), a bad escape.
        (b"filename*=u\x00tf-8''x.txt", "file"),
        (b"filename*=UTF-8''%ZZ.txt", "%ZZ.txt"),
    ],
)
def test_a_file_named_only_by_filename_star_keeps_its_name(api: Api, disposition: bytes, shown: str) -> None:
    """RFC 8187's `filename*`, which python-multipart skips: the file was stored as "file"."""
    user = api.verified_user()
    content, content_type = _multipart(b"hello", b'name="file"; ' + disposition)
    response = api.client.post(
        "/api/v1/files/upload/", headers=user["headers"] | {"Content-Type": content_type}, content=content
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == shown


def _multipart(content: bytes, disposition: bytes = b'name="file"; filename="a.txt"') -> tuple[bytes, str]:
    body = (
        b"--xyz\r\nContent-Disposition: form-data; " + disposition + b"\r\n"
        b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--xyz--\r\n"
    )
    return body, "multipart/form-data; boundary=xyz"


@pytest.fixture(scope="module")
def small_limit(settings: Settings) -> Iterator[Api]:
    """The app of this module's database with UGC_MAX_UPLOAD_BYTES set to 1 KiB."""
    app = build_app(lambda: runtime(dataclasses.replace(settings, max_upload_bytes=SMALL_LIMIT), clock=MovableClock()))
    with checked_client(app) as client:
        yield Api(client, settings)


def test_a_file_at_the_limit_is_accepted(small_limit: Api) -> None:
    user = small_limit.verified_user()
    assert uploaded(small_limit, user, b"x" * SMALL_LIMIT)["size"] == SMALL_LIMIT


def test_an_upload_over_the_limit_is_413_and_nothing_is_stored(small_limit: Api) -> None:
    user = small_limit.verified_user()
    before = stored_files(small_limit.settings)
    response = upload(small_limit, user, b"x" * (SMALL_LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"error": "Слишком большой запрос."}
    assert stored_files(small_limit.settings) == before
    assert small_limit.client.get("/api/v1/files/", headers=user["headers"]).json()["count"] == 0


def test_an_over_limit_body_without_content_length_is_cut_off_while_streaming(small_limit: Api) -> None:
    user = small_limit.verified_user()
    before = stored_files(small_limit.settings)
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(64):
            yield b"y" * 1000
        yield b"\r\n--xyz--\r\n"

    response = small_limit.client.post(
        "/api/v1/files/upload/",
        headers=user["headers"] | {"Content-Type": "multipart/form-data; boundary=xyz"},
        content=body(),
    )
    assert response.status_code == 413
    assert stored_files(small_limit.settings) == before


def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(small_limit: Api) -> None:
    user = small_limit.verified_user()
    response = small_limit.client.post(
        "/api/v1/files/upload/",
        headers=user["headers"] | {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": "999999999"},
        content=b"--xyz--\r\n",
    )
    assert response.status_code == 413
