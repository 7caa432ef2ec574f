"""The third party's check (tests/third_party_check.py) against a real server, and what it catches.

An order is taken through its lifecycle in-process; a real `ugc serve` on the same database then
answers its history, which the script fetches page by page with urllib (run with `python -I -S`:
no site-packages, so the standard library alone) and verifies; the CLI's JSON verifies the same. Then
copies of the record with one thing changed each — a shown field, the stored payload, an entry
removed, two swapped — are each refused, naming the entry.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import environment
from tests.conftest import Api
from tests.orders_world import a_deal, act, order_in
from tests.servers import Server, server_environment, start_server
from ugc.config import Settings

SCRIPT = Path(__file__).with_name("third_party_check.py")
Record = list[dict[str, Any]]


@pytest.fixture(scope="module")
def served(
    backend: str, settings: Settings, app_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, int, str, dict[str, str]]]:
    """A real server on the test's database, an order of five events in it, and the buyer's token."""
    api = Api(app_client, settings)
    deal = a_deal(api)
    order = order_in(api, deal, "completed")
    act(api, deal.buyer, order, "reviews", {"content": "Отлично", "rating": 5}, expect=201)
    env = environment(backend, settings.database_url, settings.var_dir)
    with start_server(env, log_dir=tmp_path_factory.mktemp("logs")) as server:
        yield server, order, deal.buyer["access"], env


def check(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The script as a third party runs it: its own interpreter, no site-packages, no project on the path."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_served_history_and_the_cli_json_verify(served: tuple[Server, int, str, dict[str, str]]) -> None:
    server, order, token, env = served
    url = f"{server.url}/api/v1/orders/{order}/history/?page_size=2"  # three pages, followed by `next`
    fetched = check(url, "--token", token)
    assert (fetched.returncode, fetched.stderr) == (0, ""), fetched.stdout
    assert fetched.stdout.startswith("OK: 5 entries of stream ")
    printed = subprocess.run(
        [sys.executable, "-m", "ugc.cli", "history", "order", str(order), "--json"],
        env=server_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    piped = check("-", stdin=printed)
    assert (piped.returncode, piped.stdout) == (0, fetched.stdout)
    unauthorised = check(url)
    assert unauthorised.returncode == 2 and "401" in unauthorised.stderr


def _edit_payload(record: Record) -> None:
    state = json.loads(record[0]["payload"])
    state["total_price"]["_data_"] = "10.00"
    record[0]["payload"] = json.dumps(state, ensure_ascii=False)


def _edit_both(record: Record) -> None:
    _edit_payload(record)
    record[0]["data"]["total_price"] = 10


TAMPERINGS: dict[str, tuple[Callable[[Record], object], str]] = {  # what a tampering returns is dropped
    "a shown price": (lambda r: r[0]["data"].update(total_price=10), "data.total_price differs"),
    "a shown actor": (lambda r: r[3]["actor"].update(id=r[2]["actor"]["id"]), "actor differs"),
    "a shown type": (lambda r: r[3].update(type="OrderCancelled"), "is not the stored topic"),
    "the stored payload": (_edit_payload, "hash does not match"),
    "payload and shown price alike": (_edit_both, "hash does not match"),
    "an entry removed": (lambda r: r.pop(2), "expected version 3, found version 4"),
    "two entries swapped": (lambda r: r.insert(1, r.pop(2)), "expected version 2, found version 3"),
    "the last entry's hash": (lambda r: r[-1].update(hash="0" * 64), "version 5 (position"),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_an_edited_record_is_refused_at_the_first_entry_that_differs(
    served: tuple[Server, int, str, dict[str, str]], tampering: str, tmp_path: Path
) -> None:
    server, order, token, _ = served
    answer = httpx.get(
        f"{server.url}/api/v1/orders/{order}/history/",
        headers={"Authorization": f"Bearer {token}"},
        params={"page_size": 100},
    )
    record: Record = answer.json()["results"]
    edited = copy.deepcopy(record)
    edit, named = TAMPERINGS[tampering]
    edit(edited)
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"count": len(edited), "next": None, "previous": None, "results": edited}))
    refused = check(str(path))
    assert refused.returncode == 1 and refused.stdout.startswith("MISMATCH: ") and named in refused.stdout, (
        refused.stdout
    )
    path.write_text(json.dumps(record))  # the untouched record, as a bare list, verifies
    assert check(str(path)).returncode == 0
