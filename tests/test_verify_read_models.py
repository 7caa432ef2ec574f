"""`ugc verify` replays every read model into scratch tables and names each live row that differs (both backends).

The log is the demo data's (users, services, orders in every status, reviews, chat), projected by
`ugc rebuild`; the tampering is SQL on the read tables, as a bug or an intruder would leave them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import environment, fresh_database
from tests.test_cli import ugc
from ugc import cli
from ugc.platform.database import Database


@pytest.fixture
def demo(backend: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with fresh_database(backend, tmp_path) as url:
        env = environment(backend, url, tmp_path)
        for command in (("seed", "--demo"), ("rebuild",)):
            done = ugc(env, *command)
            assert done.returncode == 0, done.stdout + done.stderr
        yield url, env


def verify(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = cli.main(["verify", "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_live_read_tables_equal_to_their_replay_verify_clean_and_each_tampered_row_is_named(
    demo: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, env = demo
    status, report = verify(env, monkeypatch, capsys)
    assert (status, report["findings"]) == (0, [])

    db = Database(url)
    try:
        with db.transaction(write=True) as cur:
            order = cur.execute("SELECT id FROM orders ORDER BY id LIMIT 1").fetchone()["id"]
            cur.execute("UPDATE orders SET status = 'completed' WHERE id = %s AND status <> 'completed'", (order,))
            if cur.rowcount == 0:
                cur.execute("UPDATE orders SET status = 'cancelled' WHERE id = %s", (order,))
            cur.execute("DELETE FROM skills WHERE id = 1")
            cur.execute("INSERT INTO categories (id, name, slug) VALUES (%s, %s, %s)", (9999, "Подделка", "fake"))
    finally:
        db.close()

    status, report = verify(env, monkeypatch, capsys)
    assert status == 1
    found = {
        (f["detail"]["table"], f["detail"]["difference"], json.dumps(f["detail"]["key"]))
        for f in report["findings"]
        if f["kind"] == "read_model"
    }
    assert found == {
        ("orders", "differs", json.dumps({"id": order})),
        ("skills", "missing", json.dumps({"id": 1})),
        ("categories", "extra", json.dumps({"id": 9999})),
    }
    [status_change] = [f for f in report["findings"] if f["detail"]["table"] == "orders"]
    assert set(status_change["detail"]["columns"]) == {"status"}
    assert "orders (id=" in status_change["what"]
