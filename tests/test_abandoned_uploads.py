"""What a `ugc serve` killed in the middle of an upload leaves behind, and the sweep that takes it away.

Real processes: a client trickles a file in over a raw socket, the server is SIGKILLed (as a forced
stop or the OOM killer ends it), and a new server is started on the same media directory and
database. The partial `.incoming/*.part` file is swept once UGC_ABANDONED_UPLOAD_AFTER has passed;
the file of an upload still under way is not, however old.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.backends import environment, fresh_database
from tests.servers import Server, run_ugc, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PASSWORD = "a-long-password"
ABANDONED_AFTER = 2  # seconds (UGC_ABANDONED_UPLOAD_AFTER)
QUOTA = 500_000  # bytes (UGC_UPLOAD_QUOTA_BYTES)
DEADLINE = 30.0


def parts(media: Path) -> list[Path]:
    return sorted((media / ".incoming").glob("*.part"))


def eventually(condition: str, check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, condition
        time.sleep(0.1)


def access_token(server: Server, username: str) -> str:
    answer = httpx.post(f"{server.url}/api/auth/token/", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access"])


@contextmanager
def trickling_upload(server: Server, token: str, size: int, first: bytes) -> Iterator[socket.socket]:
    """A raw connection that has sent an upload's head and the first bytes of its `size`-byte file."""
    prologue = b'--b\r\nContent-Disposition: form-data; name="file"; filename="clip.bin"\r\n\r\n'
    epilogue = b"\r\n--b--\r\n"
    head = (
        "POST /api/v1/files/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(prologue) + size + len(epilogue)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(head.encode() + prologue + first)
        yield raw


def test_a_killed_upload_s_part_file_is_swept_at_the_next_start_and_a_live_one_s_is_not(
    backend: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path) | {
            "UGC_ABANDONED_UPLOAD_AFTER": str(ABANDONED_AFTER),
            "UGC_UPLOAD_QUOTA_BYTES": str(QUOTA),
        }
        made = run_ugc(env, "users", "create", "trickler", "--email", "t@example.com", "--verified", stdin=PASSWORD)
        assert made.returncode == 0, made.stderr
        with start_server(env, log_dir=tmp_path / "logs") as server:
            with trickling_upload(server, access_token(server, "trickler"), QUOTA, b"x" * 100_000):
                eventually(
                    "the upload's bytes never reached its .part file",
                    lambda: sum(path.stat().st_size for path in parts(media)) > 0,
                )
                server.process.kill()  # SIGKILL: no drain, no lifespan's end
                server.process.wait(10)
        left = parts(media)
        assert len(left) == 1, left  # what the crash leaves

        with start_server(env, log_dir=tmp_path / "logs") as server:
            eventually(f"{left} not swept within {DEADLINE} s", lambda: not left[0].exists())
            token = access_token(server, "trickler")
            # A slow upload's file outlives the bound: its upload holds it, no sweep takes it.
            file = b"y" * 1000
            with trickling_upload(server, token, len(file), file[:10]) as raw:
                eventually("the live upload's .part file never appeared", lambda: bool(parts(media)))
                live = parts(media)[0]
                time.sleep(2 * ABANDONED_AFTER + 1)  # a sweep runs every ABANDONED_AFTER seconds
                assert live.exists()
                raw.sendall(file[10:] + b"\r\n--b--\r\n")
                answer = raw.recv(65536)
            assert answer.startswith(b"HTTP/1.1 201 "), answer
            # The killed upload took no room: the whole quota is there.
            whole = httpx.post(
                f"{server.url}/api/v1/files/upload/",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("all.bin", b"z" * (QUOTA - len(file)), "application/octet-stream")},
            )
            assert whole.status_code == 201, whole.text
        assert not parts(media)
