"""A person erased by `ugc users erase` (a process of its own) while their verification mail waits
for its server is never mailed, whichever process sends the mails (`ugc serve` inline, or `ugc
project`), on both backends: the sender forgets the data keys it opened as soon as it hears of the
erasure, so the mail finds no address when the server is back, not only once its keys expire."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.backends import environment, fresh_database
from tests.servers import end_process, free_port, run_ugc, start_projector, start_server
from tests.test_mail_delivery import Inbox, smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def eventually(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def register(client: httpx.Client) -> str:
    name = f"m_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "secret-pass-1", "first_name": "Анна"}
    answer = client.post("/api/auth/register/", json=body | {"last_name": "Смирнова"})
    assert answer.status_code == 201, answer.text
    return name


@pytest.mark.parametrize("projections", ["inline", "external"])
def test_the_waiting_mail_of_a_person_erased_meanwhile_is_never_sent(
    backend: str, projections: str, tmp_path: Path
) -> None:
    smtp_port = free_port()  # nobody listens yet: the mails wait
    with fresh_database(backend, tmp_path) as url, ExitStack() as stack:
        port = free_port()
        env = environment(backend, url, tmp_path) | {
            "UGC_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "UGC_PROJECTIONS": projections,
            "UGC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        server = stack.enter_context(start_server(env, port, log_dir=tmp_path / "logs"))
        sender_log = server.log_path
        if projections == "external":
            sender_log = tmp_path / "project.log"
            stack.callback(end_process, start_projector(env, sender_log))
        for lease in ("accounts", "verification_mail"):  # registrations wait for the accounts read model

            def acquired(held: str = lease) -> bool:
                return f"lease {held} acquired" in sender_log.read_text(errors="replace")

            eventually(acquired, lease)
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=20))
        erased = register(client)
        # The sender has read the mail, and so opened the person's data key, and waits for its server.
        eventually(lambda: "verification_mail deferred" in sender_log.read_text(errors="replace"), "tried")
        done = run_ugc(env, "users", "erase", erased, "--yes")
        assert done.returncode == 0, done.stderr
        kept = register(client)
        inbox = Inbox()
        with smtp_server(inbox, smtp_port):
            # Mails go in log order: once the later one is in, the erased person's had its turn.
            eventually(lambda: bool(inbox.to(f"{kept}@example.com")), "the later mail")
        assert [recipients for recipients, _ in inbox.received] == [[f"{kept}@example.com"]]
