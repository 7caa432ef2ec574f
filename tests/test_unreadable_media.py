"""Downloads from a media store the file system will not read: 503 `media_unavailable`, never 500.

A real server, dropped from root's right to read anything (`setpriv`), so that a permission stands
for what an operator meets in production: a restore that left the wrong owner, a share gone stale,
an I/O error. Before the fix a directory it could not enter answered 500, and a file it could not
open answered 200 and then cut the connection with no byte sent.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backends import environment, fresh_database
from tests.servers import Server, run_ugc, start_server

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64
PASSWORD = "a-long-password"
UNAVAILABLE = {"detail": "Хранилище файлов временно недоступно, повторите запрос позже."}
# Root reads through any permission; without these two capabilities it is refused like anyone.
AS_NOBODY_SPECIAL = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def served(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    var_dir = tmp_path_factory.mktemp(f"unreadable-{backend}")
    with fresh_database(backend, var_dir, migrated=True) as url:
        env = environment(backend, url, var_dir)
        made = run_ugc(
            env, "users", "create", "owner", "--email", "owner@example.com", "--verified", stdin=f"{PASSWORD}\n"
        )
        assert made.returncode == 0, made.stderr
        with start_server(env, log_dir=var_dir / "logs", prefix=AS_NOBODY_SPECIAL) as server:
            yield server, var_dir / "media"


@pytest.fixture
def client(served: tuple[Server, Path]) -> Iterator[httpx.Client]:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = client.post("/api/auth/token/", json={"username": "owner", "password": PASSWORD}).json()["access"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def stored_path(media: Path, key: str) -> Path:
    return media / key[:2] / key


@contextlib.contextmanager
def refused(path: Path) -> Iterator[None]:
    """`path` closed to every reader (the server's included) for the block."""
    os.chmod(path, 0)
    try:
        yield
    finally:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def private_file(client: httpx.Client, media: Path) -> tuple[str, Path]:
    """The download URL of a new private file, and where its bytes are stored."""
    before = set(media.rglob("*"))
    uploaded = client.post("/api/v1/files/upload/", files={"file": ("отчёт.txt", b"hello", "text/plain")})
    assert uploaded.status_code == 201, uploaded.text
    [path] = [path for path in set(media.rglob("*")) - before if path.is_file()]
    url: str = uploaded.json()["url"]
    return url, path


def portfolio_cover(client: httpx.Client) -> tuple[str, str]:
    """The public URL of a new portfolio cover, and its media key."""
    client.post("/api/v1/users/me/creator-profile/", json={"specialization": "Видео"})
    created = client.post(
        "/api/portfolio/",
        data={"title": "Логотип", "description": "Для компании"},
        files={"cover_image": ("logo.png", PNG, "image/png")},
    )
    assert created.status_code == 201, created.text
    url: str = created.json()["cover_image"]
    return url, url.rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.parametrize("what", ["directory", "file"])
def test_a_private_download_the_file_system_refuses_is_503(
    served: tuple[Server, Path], client: httpx.Client, what: str
) -> None:
    server, media = served
    url, path = private_file(client, media)
    with refused(path.parent if what == "directory" else path):
        answer = client.get(url)
        head = client.head(url)
    assert (answer.status_code, answer.json()) == (503, UNAVAILABLE)
    assert answer.headers["retry-after"] and head.status_code == 503
    assert client.get(url).content == b"hello"  # readable again: served again
    assert "500 on" not in server.log_path.read_text()


@pytest.mark.parametrize("what", ["directory", "file"])
def test_a_portfolio_image_the_file_system_refuses_is_503(
    served: tuple[Server, Path], client: httpx.Client, what: str
) -> None:
    server, media = served
    url, key = portfolio_cover(client)
    path = stored_path(media, key)
    with refused(path.parent if what == "directory" else path), httpx.Client() as anonymous:
        answer = anonymous.get(url)
    assert (answer.status_code, answer.json()) == (503, UNAVAILABLE)
    assert httpx.get(url).content == PNG
    assert "500 on" not in server.log_path.read_text()
