"""End to end: the client address that login throttling counts comes from a trusted proxy only.

A real `ugc serve` (uvicorn) with `UGC_FORWARDED_ALLOW_IPS`: behind a trusted proxy each client
is its own address, so one client's failures lock only that client; a proxy that is not trusted
is one address for everyone behind it, and X-Forwarded-For is ignored.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.backends import environment, fresh_database
from tests.servers import start_server


def _fail(client: httpx.Client, username: str, forwarded_for: str) -> int:
    response = client.post(
        "/api/auth/token/",
        json={"username": username, "password": "wrong-password"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("trusted", "believed"), [("127.0.0.1,::1", True), ("192.0.2.1", False)])
def test_the_throttled_address_is_the_forwarded_one_only_behind_a_trusted_proxy(
    tmp_path: Path, trusted: str, believed: bool
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        env = environment("sqlite", url, tmp_path) | {"UGC_FORWARDED_ALLOW_IPS": trusted}
        with start_server(env, log_dir=tmp_path / "logs") as server, httpx.Client(base_url=server.url) as client:
            # 30 failures (each for another name) from one client lock that client's address.
            assert {_fail(client, f"ghost_{i}", "203.0.113.7") for i in range(30)} == {401}
            assert _fail(client, "ghost_next", "203.0.113.7") == 429
            # Another client behind the same proxy is another address, if the proxy is trusted.
            assert _fail(client, "ghost_next", "203.0.113.8") == (401 if believed else 429)
