"""End to end: the client address that login throttling counts comes from a trusted proxy only.

A real `ugc serve` (uvicorn) with `UGC_FORWARDED_ALLOW_IPS`: behind a trusted proxy each client
is its own address, so one client's failures lock only that client; a proxy that is not trusted
is one address for everyone behind it, and X-Forwarded-For is ignored. And the proxy we ship
(deploy/nginx.conf, run by a real nginx) tells the API the address it sees, whatever the client wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.backends import environment, fresh_database
from tests.servers import free_port, start_server

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


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


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")
def test_behind_the_shipped_nginx_a_client_cannot_choose_its_address(tmp_path: Path) -> None:
    """docker-compose.yml trusts every X-Forwarded-For (only nginx reaches the API). nginx used to
    append to the client's own header, and uvicorn believed its first, client-written entry: 40
    failures, each from a made-up address, were never throttled."""
    with fresh_database("sqlite", tmp_path) as url:
        env = environment("sqlite", url, tmp_path) | {"UGC_FORWARDED_ALLOW_IPS": "*"}
        with (
            start_server(env, log_dir=tmp_path / "logs") as server,
            shipped_nginx(tmp_path / "nginx", server.port) as proxy,
            httpx.Client(base_url=proxy) as client,
        ):
            assert {_fail(client, f"ghost_{i}", f"198.51.100.{i}") for i in range(30)} == {401}
            assert _fail(client, "ghost_next", "198.51.100.200") == 429
            # The client's own request id reaches the API and comes back; without one, nginx's.
            assert client.get("/healthz", headers={"X-Request-ID": "my-own-id-123"}).headers["x-request-id"] == (
                "my-own-id-123"
            )
            assert len(client.get("/healthz").headers["x-request-id"]) == 32


@contextmanager
def shipped_nginx(prefix: Path, api_port: int) -> Iterator[str]:
    """deploy/nginx.conf, its upstreams pointed at one local API and its port at a free one, run by
    nginx in the foreground; the proxy's base URL."""
    assert NGINX is not None
    port = free_port()
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("api-1:8000", f"127.0.0.1:{api_port}").replace("api-2:8000", f"127.0.0.1:{api_port}")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    prefix.mkdir(parents=True)
    (prefix / "site.conf").write_text(site)
    (prefix / "nginx.conf").write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
        f"  include {prefix}/site.conf;\n}}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert process.poll() is None, (prefix / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
