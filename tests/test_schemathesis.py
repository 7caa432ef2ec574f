"""schemathesis against a live `ugc serve` on PostgreSQL: every operation of /api/schema/, bounded.

The run fails on any 5xx, any answer whose body, content type or headers differ from what the
document declares, and any status the document does not list for the operation. It signs in as a
verified creator (with a profile, a service, an order to work on, a conversation) and as a verified
buyer (tests/schemathesis_hooks.py), so it gets past 401 into what the operations do. Path ids have
the example 1, which the examples and coverage phases use, so they also reach objects that exist.

PostgreSQL only: that is where input that SQLite stores happily (a NUL) breaks things. The figures
of the run (operations, requests, failures) are printed (`pytest -s`) and kept in the test's log dir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import date, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import environment, fresh_database, postgres_available
from tests.servers import Server, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL"),
]

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "unsupported_method",
        "allow_header_conformance",
    ]
)
# UGC_FUZZ_EXAMPLES and UGC_FUZZ_PHASES (e.g. "examples,coverage,fuzzing,stateful") make a deeper
# run by hand; CI keeps the bounded one.
# Per operation and phase: with the coverage phase about 3,700 requests, under a minute here.
MAX_EXAMPLES = int(os.environ.get("UGC_FUZZ_EXAMPLES", "8"))
RUN_TIMEOUT = int(
    os.environ.get("UGC_FUZZ_TIMEOUT", "420")
)  # seconds: a run that takes longer is a failure, not a hang
PASSWORD = "fuzz-pass-123"
LINK = re.compile(r"token=([A-Za-z0-9._-]+)")


def _verified_user(client: httpx.Client, outbox: Path, name: str) -> str:
    email = f"{name}@example.com"
    registered = client.post(
        "/api/auth/register/",
        json={"username": name, "email": email, "password": PASSWORD, "first_name": name, "last_name": "Fuzz"},
    )
    assert registered.status_code == 201, registered.text
    token = _mailed_token(outbox, email)
    verified = client.post("/api/auth/verify-email/", json={"token": token})
    assert verified.status_code == 200, verified.text
    tokens = client.post("/api/auth/token/", json={"username": name, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    access: str = tokens.json()["access"]
    return access


def _mailed_token(outbox: Path, email: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in outbox.glob("*.eml"):
            mail = message_from_bytes(path.read_bytes())
            if mail["To"] == email:
                payload = mail.get_payload(decode=True)
                assert isinstance(payload, bytes)
                match = LINK.search(payload.decode())
                assert match is not None
                return match.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no verification mail to {email}")


def _world(server: Server, outbox: Path) -> list[str]:
    """A creator with a profile and a service, a buyer with an order on it and a conversation."""
    with httpx.Client(base_url=server.url, timeout=20) as client:
        creator = _verified_user(client, outbox, "fuzzcreator")
        buyer = _verified_user(client, outbox, "fuzzbuyer")
        as_creator = {"Authorization": f"Bearer {creator}"}
        as_buyer = {"Authorization": f"Bearer {buyer}"}
        profile = client.post(
            "/api/v1/users/me/creator-profile/", headers=as_creator, json={"specialization": "Видеограф"}
        )
        assert profile.status_code == 201, profile.text
        category = client.get("/api/v1/categories/").json()["results"][0]["id"]
        service = client.post(
            "/api/v1/services/",
            headers=as_creator,
            json={
                "title": "Видеообзор",
                "description": "До 60 секунд",
                "category_id": category,
                "base_price": 1000,
                "delivery_time": 7,
                "options": [{"name": "Субтитры", "price": 200}],
            },
        )
        assert service.status_code == 201, service.text
        order = client.post(
            "/api/v1/orders/",
            headers=as_buyer,
            json={"service_id": service.json()["id"], "delivery_date": str(date.today() + timedelta(days=10))},
        )
        assert order.status_code == 201, order.text
        creator_id = client.get("/api/v1/users/me/", headers=as_creator).json()["id"]
        conversation = client.post("/api/v1/conversations/", headers=as_buyer, json={"recipient_id": creator_id})
        assert conversation.status_code == 201, conversation.text
        sent = client.post(
            f"/api/v1/conversations/{conversation.json()['id']}/messages/", headers=as_buyer, json={"message": "Привет"}
        )
        assert sent.status_code == 201, sent.text
    return [creator, buyer]


def _figures(report: dict[str, Any], har: dict[str, Any]) -> dict[str, Any]:
    """Operations, test cases, requests (by status) and failures of a run, from its JSON and HAR reports."""
    statuses: dict[int, int] = {}
    for entry in har["log"]["entries"]:
        status = entry["response"]["status"]
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "operations": report["operations"]["tested"],
        "test_cases": report["test_cases"]["generated"],
        "requests": len(har["log"]["entries"]),
        "statuses": dict(sorted(statuses.items())),
        "failures": report["test_cases"]["with_failures"],
        "errors": report["errors"],
        "seconds": round(report["running_time"]),
    }


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_schemathesis_finds_nothing_wrong_with_any_operation(tmp_path: Path) -> None:
    with fresh_database("postgres", tmp_path) as url:
        env = environment("postgres", url, tmp_path / "var")
        with start_server(env, log_dir=tmp_path / "logs") as server:
            tokens = _world(server, tmp_path / "var" / "outbox")
            report_path = tmp_path / "schemathesis.json"
            har_path = tmp_path / "schemathesis.har"
            command = [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{server.url}/api/schema/",
                "--checks",
                CHECKS,
                "--phases",
                os.environ.get("UGC_FUZZ_PHASES", "examples,coverage,fuzzing"),
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                "20261202",
                # One worker: hypothesis' lambda descriptions call ast.parse, which is not thread-safe on
                # Python 3.11 ("SystemError: AST constructor recursion depth mismatch" with two).
                "--workers",
                "1",
                "--request-timeout",
                "15",
                "--no-shrink",
                "--continue-on-failure",
                "--report",
                "json,har",
                "--report-json-path",
                str(report_path),
                "--report-har-path",
                str(har_path),
            ]
            run = subprocess.run(
                command,
                env=os.environ
                | {
                    "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
                    "UGC_FUZZ_TOKENS": ",".join(tokens),
                    "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                },
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                cwd=tmp_path,  # schemathesis keeps a cache in .schemathesis/ of its working directory
            )
            (tmp_path / "schemathesis.out").write_text(run.stdout + run.stderr)
            print(run.stdout[-6000:])
            assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:] + "\nserver:\n" + server.log_tail()
            figures = _figures(json.loads(report_path.read_text()), json.loads(har_path.read_text()))
            (tmp_path / "figures.json").write_text(json.dumps(figures))
            print("schemathesis:", json.dumps(figures))
            documented = sum(
                method in ("get", "post", "put", "patch", "delete")
                for ops in httpx.get(f"{server.url}/api/schema/").json()["paths"].values()
                for method in ops
            )
            # schemathesis leaves out the operation that serves the schema it tests (the in-process API
            # tests hold that answer to OpenAPIOut).
            assert figures["operations"] == documented - 1
            assert figures["failures"] == 0 and figures["errors"] == []
            assert not [status for status in figures["statuses"] if status >= 500]
