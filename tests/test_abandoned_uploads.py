"""What a `ugc serve` killed in the middle of an upload leaves behind, and the sweep that takes it away.

Real processes: the server is SIGKILLed (as a forced stop or the OOM killer ends it) while an upload
streams in, or while its command waits to append (the test holds the files log's table lock), and a
new server is started on the same media directory and database. Once UGC_ABANDONED_UPLOAD_AFTER has
passed, the partial `.incoming/*.part` file is swept (not the file of an upload still under way,
however old), and the quota taken for an upload whose event was never stored is given back, its
bytes removed; an upload whose event was stored keeps its room and its bytes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.backends import environment, fresh_database, postgres_available
from tests.servers import Server, run_ugc, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PASSWORD = "a-long-password"
ABANDONED_AFTER = 2  # seconds (UGC_ABANDONED_UPLOAD_AFTER)
# The bound of the test of `.part` files alone: an upload takes its room once its bytes are in, so the
# live upload it keeps waiting has no reservation for a sweep to take; the wait past it is 2 s shorter.
PART_ABANDONED_AFTER = 1
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


def deployment_with(backend: str, url: str, tmp_path: Path, user: str, **extra: str) -> dict[str, str]:
    """The server's environment (a short abandonment bound, a small quota, `extra`), with `user`
    registered and verified."""
    env = environment(backend, url, tmp_path) | {
        "UGC_ABANDONED_UPLOAD_AFTER": str(ABANDONED_AFTER),
        "UGC_UPLOAD_QUOTA_BYTES": str(QUOTA),
        **extra,
    }
    made = run_ugc(env, "users", "create", user, "--email", f"{user}@example.com", "--verified", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    return env


def test_a_killed_upload_s_part_file_is_swept_at_the_next_start_and_a_live_one_s_is_not(
    backend: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = deployment_with(backend, url, tmp_path, "trickler", UGC_ABANDONED_UPLOAD_AFTER=str(PART_ABANDONED_AFTER))
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
                time.sleep(2 * PART_ABANDONED_AFTER + 1)  # a sweep runs every PART_ABANDONED_AFTER seconds
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


def counted(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, list[str]]:
    """The bytes the quota counts for the one user, and the media keys of the reservations open."""
    row = conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM stored_bytes").fetchone()
    keys = conn.execute("SELECT media_key FROM upload_reservations ORDER BY media_key").fetchall()
    return int(str(row[0])) if row else 0, [str(key) for (key,) in keys]


def waiting_for_the_files_log(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """The sessions waiting for a lock on the files log's table (the upload's append)."""
    rows = conn.execute(
        "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE NOT l.granted AND c.relname = 'files_events'"
    ).fetchall()
    return [int(str(pid)) for (pid,) in rows]


def upload(base_url: str, token: str, size: int) -> httpx.Response | httpx.TransportError:
    try:
        return httpx.post(
            f"{base_url}/api/v1/files/upload/",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("f.bin", b"q" * size, "application/octet-stream")},
            timeout=60,
        )
    except httpx.TransportError as error:
        return error


@pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_the_room_of_an_upload_killed_before_its_event_was_stored_is_given_back_and_its_bytes_removed(
    tmp_path: Path,
) -> None:
    media = tmp_path / "media"
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        env = deployment_with("postgres", url, tmp_path, "uploader")
        with psycopg.connect(url, autocommit=True) as watcher:
            with start_server(env, log_dir=tmp_path / "logs") as server:
                token = access_token(server, "uploader")
                kept = upload(server.url, token, 1000)
                assert isinstance(kept, httpx.Response) and kept.status_code == 201, kept
                assert counted(watcher) == (1000, [])  # stored: its room stays taken, its reservation settled

                with psycopg.connect(url) as holder:
                    holder.execute("LOCK TABLE files_events IN EXCLUSIVE MODE")  # the append waits
                    answers: list[object] = []
                    sending = threading.Thread(target=lambda: answers.append(upload(server.url, token, 100_000)))
                    sending.start()
                    eventually("the upload never reached its append", lambda: bool(waiting_for_the_files_log(watcher)))
                    server.process.kill()
                    server.process.wait(10)
                    for pid in waiting_for_the_files_log(watcher):  # the dead process's session
                        watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    holder.rollback()
                sending.join(30)
                assert answers and isinstance(answers[0], httpx.TransportError), answers
            taken, [lost] = counted(watcher)
            assert taken == 101_000  # what the crash leaves: room taken for bytes no event names
            assert (media / lost[:2] / lost).is_file()

            time.sleep(ABANDONED_AFTER)
            with start_server(env, log_dir=tmp_path / "logs") as server:
                eventually("the lost upload's room was not given back", lambda: counted(watcher) == (1000, []))
                assert not (media / lost[:2] / lost).exists()
                token = access_token(server, "uploader")
                kept_file = httpx.get(
                    f"{server.url}/api/v1/files/{kept.json()['id']}/download/",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert kept_file.status_code == 200 and kept_file.content == b"q" * 1000
                rest = upload(server.url, token, QUOTA - 1000)  # the whole quota is there again
                assert isinstance(rest, httpx.Response) and rest.status_code == 201, rest


def waiting_for_a_lock(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchall()
    return [int(str(pid)) for (pid,) in rows]


def files_in_log(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT count(*) FROM files_events").fetchone()
    return int(str(row[0])) if row else 0


@pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_an_upload_killed_right_after_its_event_was_stored_keeps_its_room_and_its_bytes(tmp_path: Path) -> None:
    media = tmp_path / "media"
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        env = deployment_with("postgres", url, tmp_path, "uploader")
        with psycopg.connect(url, autocommit=True) as watcher:
            with start_server(env, log_dir=tmp_path / "logs") as server:
                token = access_token(server, "uploader")
                before = files_in_log(watcher)
                with psycopg.connect(url) as log_lock, psycopg.connect(url) as row_lock:
                    log_lock.execute("LOCK TABLE files_events IN EXCLUSIVE MODE")  # the append waits
                    answers: list[object] = []
                    sending = threading.Thread(target=lambda: answers.append(upload(server.url, token, 100_000)))
                    sending.start()
                    eventually("the upload never reached its append", lambda: bool(waiting_for_the_files_log(watcher)))
                    # Its intent is recorded; from now on its reservation is the test's until the process is dead.
                    held = row_lock.execute("SELECT intent FROM upload_reservations FOR UPDATE").fetchall()
                    assert len(held) == 1 and held[0][0], held
                    log_lock.rollback()  # the append commits; the settling waits for the reservation's row
                    eventually(
                        "the append did not commit, or the settling did not wait",
                        lambda: files_in_log(watcher) > before and bool(waiting_for_a_lock(watcher)),
                    )
                    server.process.kill()
                    server.process.wait(10)
                    for pid in waiting_for_a_lock(watcher):
                        watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    row_lock.rollback()
                sending.join(30)
                assert answers and isinstance(answers[0], httpx.TransportError), answers
            taken, [stored] = counted(watcher)
            assert taken == 100_000

            time.sleep(ABANDONED_AFTER)
            with start_server(env, log_dir=tmp_path / "logs") as server:
                eventually("the stored upload's reservation was not settled", lambda: counted(watcher) == (100_000, []))
                assert (media / stored[:2] / stored).is_file()
                token = access_token(server, "uploader")
                listed = httpx.get(f"{server.url}/api/v1/files/", headers={"Authorization": f"Bearer {token}"})
                assert listed.json()["count"] == 1, listed.text
                over = upload(server.url, token, QUOTA - 100_000 + 1)  # its room stays taken
                assert isinstance(over, httpx.Response) and over.status_code == 413, over


@pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_an_upload_whose_reservation_cannot_be_settled_now_is_201_and_settled_by_the_sweep(tmp_path: Path) -> None:
    """The upload's event is stored: whether its reservation's row can be deleted at once is no
    business of the client's (the sweep settles it later, the event store holding its intent)."""
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        # The settling gives up on the row the test holds after 1 s.
        env = deployment_with("postgres", url, tmp_path, "uploader", UGC_DB_LOCK_TIMEOUT="1")
        with psycopg.connect(url, autocommit=True) as watcher, start_server(env, log_dir=tmp_path / "logs") as server:
            token = access_token(server, "uploader")
            with psycopg.connect(url) as log_lock, psycopg.connect(url) as row_lock:
                log_lock.execute("LOCK TABLE files_events IN EXCLUSIVE MODE")  # the append waits
                answers: list[object] = []
                sending = threading.Thread(target=lambda: answers.append(upload(server.url, token, 100_000)))
                sending.start()
                eventually("the upload never reached its append", lambda: bool(waiting_for_the_files_log(watcher)))
                row_lock.execute("SELECT intent FROM upload_reservations FOR UPDATE")
                log_lock.rollback()  # the append commits; the settling waits for the row, and gives up
                sending.join(30)
                row_lock.rollback()
            [answer] = answers
            assert isinstance(answer, httpx.Response) and answer.status_code == 201, answer
            eventually("the sweep did not settle the reservation", lambda: counted(watcher) == (100_000, []))
