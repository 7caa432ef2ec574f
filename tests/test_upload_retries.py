"""An upload retried with its `Idempotency-Key` after a 503 stores its file once, on a real server.

`ugc serve` with `UGC_PROJECTIONS=external` and a `ugc project` beside it: with the projector
stopped, an upload is stored but its read-your-writes wait times out (503); the client sends the
same file again with the same key, framed anew (httpx draws a new multipart boundary per request),
once the projector is back, and gets the first answer, not a second file.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

from api.errors import message
from tests.backends import environment, fresh_database
from tests.conftest import Api, version_of
from tests.servers import Server, end_process, free_port, start_projector, start_server
from ugc.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

UPLOAD = "/api/v1/files/upload/"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 32
KEY_REUSED = message("idempotency_key_reused")


@dataclass
class Served:
    server: Server
    api: Api
    env: dict[str, str]
    log: Path
    projector: subprocess.Popen[bytes] | None

    def stop_projector(self) -> None:
        assert self.projector is not None
        end_process(self.projector)
        self.projector = None

    def start_projector(self, listed: str, user: dict[str, Any]) -> None:
        """Start `ugc project` and return once `user`'s list at `listed` shows one object (it caught up)."""
        self.projector = start_projector(self.env, self.log)
        deadline = time.monotonic() + 60
        while self.api.client.get(listed, headers=user["headers"]).json()["count"] != 1:
            assert time.monotonic() < deadline, "the projector did not catch up"
            time.sleep(0.1)


@pytest.fixture
def served(backend: str, tmp_path: Path) -> Iterator[Served]:
    with fresh_database(backend, tmp_path) as url:
        port = free_port()
        env = environment(backend, url, tmp_path) | {
            "UGC_PROJECTIONS": "external",
            "UGC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        log = tmp_path / "project.log"
        running = Served(None, None, env, log, start_projector(env, log))  # type: ignore[arg-type]
        try:
            with (
                start_server(env, port, log_dir=tmp_path / "logs") as server,
                httpx.Client(base_url=server.url, timeout=30) as http,
            ):
                running.server, running.api = server, Api(http, Settings.from_env(env))  # type: ignore[arg-type]
                yield running
        finally:
            if running.projector is not None:
                end_process(running.projector)


def upload(served: Served, user: dict[str, Any], key: str, content: bytes) -> httpx.Response | httpx2.Response:
    headers = user["headers"] | {"Idempotency-Key": key}
    response = served.api.client.post(UPLOAD, headers=headers, files={"file": ("отчет.txt", content, "text/plain")})
    return response


def stored_files(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.media_dir.rglob("*") if path.is_file())


def test_an_upload_retried_with_its_key_after_a_503_stores_one_file(served: Served) -> None:
    user = served.api.verified_user()
    settings = served.api.settings
    served.stop_projector()
    first = upload(served, user, "report-1", b"the report")
    assert first.status_code == 503, first.text
    served.start_projector("/api/v1/files/", user)
    retry = upload(served, user, "report-1", b"the report")
    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    again = upload(served, user, "report-1", b"the report")
    assert (again.status_code, again.json()) == (201, retry.json())

    listed = served.api.client.get("/api/v1/files/", headers=user["headers"]).json()
    assert [file["id"] for file in listed["results"]] == [retry.json()["id"]]
    assert len(stored_files(settings)) == 1

    other = upload(served, user, "report-1", b"another report")
    assert (other.status_code, other.json()["fields"]) == (422, {"Idempotency-Key": [KEY_REUSED]})
    assert len(stored_files(settings)) == 1


def test_an_upload_refused_before_it_was_stored_leaves_its_key_free(served: Served) -> None:
    """An empty file is 422 before the key is claimed: the same key then uploads the real file."""
    user = served.api.verified_user()
    empty = upload(served, user, "report-2", b"")
    assert empty.status_code == 422, empty.text
    done = upload(served, user, "report-2", b"the report")
    assert done.status_code == 201, done.text
    assert "idempotent-replayed" not in done.headers
    assert len(stored_files(served.api.settings)) == 1


def test_a_portfolio_item_retried_with_its_key_after_a_503_is_created_once(served: Served) -> None:
    """The portfolio's forms (a cover image, or JSON fields on an update) take the key the same way."""
    creator = served.api.creator()
    headers = creator["headers"] | {"Idempotency-Key": "cover-1"}
    form: dict[str, Any] = {"data": {"title": "Логотип"}, "files": {"cover_image": ("c.gif", GIF, "image/gif")}}
    served.stop_projector()
    first = served.api.client.post("/api/portfolio/", headers=headers, **form)
    assert first.status_code == 503, first.text
    served.start_projector("/api/portfolio/", creator)
    retry = served.api.client.post("/api/portfolio/", headers=headers, **form)
    assert (retry.status_code, retry.headers["idempotent-replayed"]) == (201, "true"), retry.text
    listed = served.api.client.get("/api/portfolio/", headers=creator["headers"]).json()
    assert [item["id"] for item in listed["results"]] == [retry.json()["id"]]
    assert len(stored_files(served.api.settings)) == 1

    url = f"/api/portfolio/{retry.json()['id']}/"
    renamed = creator["headers"] | {"Idempotency-Key": "rename-1"}
    edited = served.api.client.patch(url, headers=renamed, json={"title": "Новый логотип"})
    assert edited.status_code == 200 and version_of(edited) == 2, edited.text
    again = served.api.client.patch(url, headers=renamed, json={"title": "Новый логотип"})
    assert (again.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    assert again.headers["etag"] == edited.headers["etag"]
