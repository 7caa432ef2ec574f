"""More clients at once than the soft limit of open files the server was started with (a real `ugc
serve` under `prlimit`): it raises that limit to the hard one before serving, so each is accepted
and answered, where past the limit `accept()` would fail and leave them, and every new client,
waiting (ugc/platform/open_files.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.backends import environment, fresh_database
from tests.servers import start_server

pytestmark = pytest.mark.e2e

SOFT, HARD = 256, 4096
CLIENTS = 2 * SOFT


def test_a_server_holds_more_clients_than_the_soft_limit_of_open_files_it_was_started_with(
    backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path)
        limited = ["prlimit", f"--nofile={SOFT}:{HARD}", "--"]
        with start_server(env, log_dir=tmp_path, prefix=limited) as server:
            assert f"open files   {HARD} (raised from {SOFT})" in server.log_tail()
            address = urlsplit(server.url)
            clients = [socket.create_connection((address.hostname, address.port), timeout=10) for _ in range(CLIENTS)]
            try:
                for client in clients:  # every one of them open at once, each then asks
                    client.sendall(b"GET /healthz/ HTTP/1.1\r\nHost: test\r\n\r\n")
                answers = [client.recv(64) for client in clients]
            finally:
                for client in clients:
                    client.close()
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), {a[:20] for a in answers}
