"""The pages a person opens: the mail link's confirmation page and the docs, on the port served."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from tests.backends import environment
from tests.servers import Server, start_server

pytestmark = pytest.mark.e2e

Served = tuple[Server, httpx.Client, Path]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with the tests' settings and no UGC_PUBLIC_URL, its client and its data directory: one
    for the tests that only read its pages (and register a user of their own); a start is ~1 s."""
    var = tmp_path_factory.mktemp("pages")
    env = environment("sqlite", f"sqlite:///{var / 'ugc.sqlite3'}", var)
    with start_server(env, log_dir=var) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield server, client, var


def test_serve_announces_itself_and_links_mails_to_the_port_it_serves(served: Served) -> None:
    server, client, var = served
    banner = server.log_tail()
    assert f"public URL   {server.url}\n" in banner and f"API docs     {server.url}/api/docs/" in banner
    assert f"data dir     {var.resolve()}" in banner and f"mail         {var.resolve() / 'outbox'}" in banner
    registered = client.post(
        "/api/auth/register/",
        json={
            "username": "page_anna",
            "email": "page_anna@example.com",
            "password": "long-enough-1",
            "first_name": "",
            "last_name": "",
        },
    )
    assert registered.status_code == 201, registered.text
    link = _mailed_link(var / "outbox")
    assert link.startswith(f"{server.url}/verify-email?token=")
    page = client.get(link.removeprefix(server.url))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert 'id="confirm"' in page.text and "/api/auth/verify-email/" in page.text
    # Opening the page verified nothing; the button's POST does.
    token = client.post("/api/auth/token/", json={"username": "page_anna", "password": "long-enough-1"})
    me = client.get("/api/v1/users/me/", headers={"Authorization": f"Bearer {token.json()['access']}"}).json()
    assert me["is_verified"] is False
    for docs in ("/api/docs/", "/api/redoc/"):
        answer = client.get(docs)
        assert answer.status_code == 200 and "default-src 'self'" in answer.headers["content-security-policy"]
        assert "http://" not in answer.text and "https://" not in answer.text
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/docs/assets/pyproject.toml").status_code == 404


def _mailed_link(outbox: Path) -> str:
    for _ in range(200):
        for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
            body = message_from_bytes(path.read_bytes()).get_payload(decode=True)
            assert isinstance(body, bytes)
            if found := re.search(r"http://\S+/verify-email\?token=\S+", body.decode()):
                return found.group(0)
        time.sleep(0.05)
    raise AssertionError("no verification mail in the outbox")


def test_the_auditors_page_runs_only_its_own_scripts_and_is_neither_cached_nor_framed(served: Served) -> None:
    _, client, _ = served
    for path in ("/audit/", "/audit"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
        policy = {part.strip() for part in page.headers["content-security-policy"].split(";")}
        assert {"default-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} <= policy
        assert not any(part.startswith(("script-src", "style-src")) for part in policy)  # no 'unsafe-inline'
    assert 'id="signin"' in page.text and "ugc verify" in page.text
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert scripts and all('src="/api/docs/assets/' in attributes for attributes in scripts)  # none inline
    assets = re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', page.text)
    assert {"/api/docs/assets/audit.js", "/api/docs/assets/audit-verify.js", "/api/docs/assets/audit.css"} <= {
        asset.partition("?")[0] for asset in assets
    }
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        if not asset.endswith(".png"):
            assert "http://" not in answer.text and "https://" not in answer.text, asset
    assert "http://" not in page.text and "https://" not in page.text
    script = client.get("/api/docs/assets/audit.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "localStorage" not in script.text and "sessionStorage" not in script.text
    assert "crypto.subtle.digest" in client.get("/api/docs/assets/audit-verify.js").text


def test_every_file_a_page_loads_is_named_by_its_content(served: Served) -> None:
    """The pages are never cached, but the scripts and styles they load are, for a day: under a
    fixed URL an upgrade's new audit.html ran with the auditor's browser's copy of yesterday's
    audit.js and audit-verify.js, the old checks for up to a day. Each reference now carries a
    digest of the file's bytes, so new content is a new URL and a cached copy is only ever its own."""
    _, client, _ = served
    for page in ("/audit/", "/api/docs/", "/api/redoc/"):
        html = client.get(page).text
        references = re.findall(r'(?:src|href)="(/api/docs/assets/[^"]*)"', html)
        assert references, page
        for reference in references:
            path, _, version = reference.partition("?v=")
            answer = client.get(reference)
            assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=86400"
            assert version == hashlib.sha256(answer.content).hexdigest()[:16], (page, reference)
            assert client.get(path).content == answer.content


def test_behind_a_proxy_that_serves_the_api_under_a_path_the_pages_load_and_call_under_it(tmp_path: Path) -> None:
    """UGC_PUBLIC_URL may name a path (`https://example.com/ugc`: a proxy serving the API there, passing
    `/ugc/...` on as `/...`). The pages loaded their files and called the API from the host's root
    (`/api/...`), which such a proxy does not pass on: no styles, no scripts, no confirmation."""
    env = environment("sqlite", f"sqlite:///{tmp_path / 'ugc.sqlite3'}", tmp_path) | {
        "UGC_PUBLIC_URL": "https://example.com/ugc"
    }
    with start_server(env, log_dir=tmp_path) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        for page in ("/audit/", "/api/docs/", "/api/redoc/", "/verify-email/?token=x"):
            html = client.get(page).text
            assert '<html lang="ru" data-base="/ugc">' in html  # what its scripts call the API under
            reached = re.findall(r'"(/[^"\s]*)"', html.replace('data-base="/ugc"', ""))
            assert reached, page
            assert all(path.startswith("/ugc/api/") for path in reached), (page, reached)
            for path in reached:  # as the proxy passes them on
                assert client.get(path.removeprefix("/ugc")).status_code in (200, 405), (page, path)
