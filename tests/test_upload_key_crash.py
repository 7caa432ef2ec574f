"""An upload sent with an `Idempotency-Key` whose server was SIGKILLed at its append: the client's retry
with the same key lands exactly once.

Real processes on PostgreSQL, as tests/test_abandoned_uploads.py: the test holds the files log's table
lock, so the upload claims its key, announces its intent, reserves its room and waits to append. Killed
there, the retry (once UGC_IDEMPOTENCY_IN_FLIGHT passed) takes the key over and stores the file; killed
right after the append (the key's and the reservation's rows held, so neither learns of it), the retry
is answered 409 "answer lost" and stores nothing. Either way one file is listed and its room counted once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from api.errors import message
from tests.backends import fresh_database, postgres_available
from tests.servers import Server, start_server
from tests.test_abandoned_uploads import (
    ABANDONED_AFTER,
    DEADLINE,
    access_token,
    counted,
    deployment_with,
    eventually,
    files_in_log,
    waiting_for_a_lock,
    waiting_for_the_files_log,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL"),
]

IN_FLIGHT = 3  # seconds (UGC_IDEMPOTENCY_IN_FLIGHT)
SIZE = 100_000
KEY = "upload-killed-at-its-append"


def keyed_upload(base_url: str, token: str) -> httpx.Response | httpx.TransportError:
    try:
        return httpx.post(
            f"{base_url}/api/v1/files/upload/",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": KEY},
            files={"file": ("f.bin", b"q" * SIZE, "application/octet-stream")},
            timeout=60,
        )
    except httpx.TransportError as error:
        return error


def settled_retry(server: Server, token: str) -> httpx.Response:
    """The retry's answer once the dead claim expired (409 "in flight" until then)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        retry = keyed_upload(server.url, token)
        assert isinstance(retry, httpx.Response), retry
        if retry.status_code != 409 or retry.json() != {"error": message("idempotency_key_in_flight")}:
            return retry
        assert time.monotonic() < deadline, retry.text
        time.sleep(0.2)


@pytest.mark.parametrize("stored", [False, True], ids=["before-its-append", "right-after-its-append"])
def test_an_upload_retried_with_its_key_after_its_server_was_killed_is_stored_once(
    tmp_path: Path, stored: bool
) -> None:
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        env = deployment_with("postgres", url, tmp_path, "uploader", UGC_IDEMPOTENCY_IN_FLIGHT=str(IN_FLIGHT))
        with psycopg.connect(url, autocommit=True) as watcher:
            with start_server(env, log_dir=tmp_path / "logs") as server:
                token = access_token(server, "uploader")
                with psycopg.connect(url) as log_lock, psycopg.connect(url) as row_lock:
                    log_lock.execute("LOCK TABLE files_events IN EXCLUSIVE MODE")  # the append waits
                    answers: list[object] = []
                    sending = threading.Thread(target=lambda: answers.append(keyed_upload(server.url, token)))
                    sending.start()
                    eventually("the upload never reached its append", lambda: bool(waiting_for_the_files_log(watcher)))
                    if stored:  # the key and the reservation are the test's until the process is dead
                        row_lock.execute("SELECT intent FROM upload_reservations FOR UPDATE")
                        row_lock.execute("SELECT intent FROM idempotency_keys FOR UPDATE")
                        log_lock.rollback()  # the append commits; what follows it waits for the rows
                        eventually(
                            "the append did not commit, or what follows it did not wait",
                            lambda: files_in_log(watcher) == 1 and bool(waiting_for_a_lock(watcher)),
                        )
                    server.process.kill()
                    server.process.wait(10)
                    for pid in waiting_for_a_lock(watcher) + waiting_for_the_files_log(watcher):
                        watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))  # the dead process's sessions
                    row_lock.rollback()
                    log_lock.rollback()
                sending.join(30)
                assert answers and isinstance(answers[0], httpx.TransportError), answers
            claimed = watcher.execute("SELECT status, appended FROM idempotency_keys WHERE key = %s", (KEY,)).fetchone()
            assert claimed == (None, None), claimed  # the key knows nothing of how it ended
            assert files_in_log(watcher) == int(stored)

            time.sleep(max(ABANDONED_AFTER, IN_FLIGHT))
            with start_server(env, log_dir=tmp_path / "logs") as server:
                token = access_token(server, "uploader")
                retry = settled_retry(server, token)
                if stored:
                    assert retry.status_code == 409 and retry.json() == {
                        "error": message("idempotency_key_answer_lost")
                    }
                else:
                    assert retry.status_code == 201, retry.text
                again = keyed_upload(server.url, token)
                assert isinstance(again, httpx.Response), again
                assert (again.status_code, again.json()) == (retry.status_code, retry.json())
                assert again.headers["idempotent-replayed"] == "true"
                listed = httpx.get(f"{server.url}/api/v1/files/", headers={"Authorization": f"Bearer {token}"})
                assert listed.json()["count"] == 1, listed.text
                assert files_in_log(watcher) == 1
                eventually("the quota does not count the file once", lambda: counted(watcher) == (SIZE, []))
