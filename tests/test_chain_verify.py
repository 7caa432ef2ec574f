"""`ugc verify` on a tampered log: each kind of tampering named, an untouched log clean (both backends).

The log is written through the real recorders; the tampering is done as an intruder with database
access would: SQL on the event and chain tables.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from commands.accounts import AccountCommands
from tests.backends import DATA_KEY, copy_of_database, environment, fresh_database
from tests.servers import run_ugc as ugc
from ugc import cli
from ugc.clock import SystemClock
from ugc.config import Settings, sqlite_path
from ugc.events import operator_actor
from ugc.ids import ID_KINDS
from ugc.platform.chain import GENESIS, StoredEntry, canonical_bytes, chain_entries, stream_hash
from ugc.platform.checkpoints import write_checkpoint
from ugc.platform.database import Database
from ugc.platform.erasure_journal import record_erasure
from ugc.platform.restore_floors import raise_floors
from ugc.platform.store import EventStores

# The orders log as written: stream A's versions 1-4 and B's 1-3, interleaved.
ORDER = [("A", 1), ("A", 2), ("B", 1), ("A", 3), ("B", 2), ("A", 4), ("B", 3)]


@dataclass
class Log:
    url: str
    env: dict[str, str]
    streams: dict[str, UUID]

    def position(self, stream: str, version: int) -> int:
        return ORDER.index((stream, version)) + 1

    def sql(self, postgres: str, sqlite: str, *params: Any) -> None:
        """Run one tampering statement on the orders log (`{events}`/`{chain}` name its tables)."""
        if self.url.startswith("postgresql"):
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(postgres.format(events="orders_events", chain="orders_events_chain"), params)
        else:
            main = sqlite_path(self.url)
            with closing(sqlite3.connect(main.with_name(f"{main.stem}.orders{main.suffix}"))) as lite, lite:
                lite.execute(sqlite.format(events="stored_events", chain="stored_events_chain"), params)

    def set_state(self, position: int, state: bytes) -> None:
        self.sql(
            "UPDATE {events} SET state = %s WHERE notification_id = %s",
            "UPDATE {events} SET state = ? WHERE rowid = ?",
            state,
            position,
        )

    def delete_event(self, stream: str, version: int) -> None:
        position = self.position(stream, version)
        self.sql("DELETE FROM {events} WHERE notification_id = %s", "DELETE FROM {events} WHERE rowid = ?", position)

    def delete_chain_row(self, stream: str, version: int) -> None:
        position = self.position(stream, version)
        self.sql(
            "DELETE FROM {chain} WHERE notification_id = %s", "DELETE FROM {chain} WHERE notification_id = ?", position
        )

    def verify(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        status = cli.main(["verify", "--json"])
        return status, json.loads(capsys.readouterr().out)

    def checkpoint(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["audit", "checkpoint"]) == 0

    def append_later_event(self) -> None:
        """Append stream B's version 4 as the store does (chained): the log grows past a checkpoint."""
        stores = EventStores(self.url, data_key=DATA_KEY)
        try:
            stores.orders.recorder.insert_events([StoredEvent(self.streams["B"], 4, "ugc.Order.Updated", payload(4))])
        finally:
            stores.close()


def payload(version: int) -> bytes:
    return json.dumps({"total_price": "1000.00", "note": f"событие {version}", "actor": "user:1"}).encode()


@pytest.fixture(scope="module")
def written(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, UUID]]]:
    """The orders log of ORDER, written once per backend through the real recorders: its database's URL,
    its directory and its streams. No test touches it; each tampers with a copy of its own (`log`)."""
    where = tmp_path_factory.mktemp(f"log-{backend}")
    with fresh_database(backend, where, migrated=True) as url:  # PostgreSQL: a copy of a migrated template
        streams = {"A": uuid4(), "B": uuid4()}
        stores = EventStores(url, data_key=DATA_KEY)
        try:
            for stream, version in ORDER:
                stores.orders.recorder.insert_events(
                    [StoredEvent(streams[stream], version, "ugc.Order.Updated", payload(version))]
                )
        finally:
            stores.close()
        yield url, where, streams


@pytest.fixture
def log(backend: str, written: tuple[str, Path, dict[str, UUID]], tmp_path: Path) -> Iterator[Log]:
    """A copy of the written log: on SQLite its files in the test's directory, on PostgreSQL a database
    made from it as a template (a few ms, where writing it again took ~0.1 s)."""
    url, where, streams = written
    if backend == "sqlite":
        shutil.copytree(where, tmp_path, dirs_exist_ok=True)
        copy = f"sqlite:///{tmp_path / 'ugc.sqlite3'}"
        yield Log(copy, environment(backend, copy, tmp_path), streams)
        return
    with copy_of_database(url) as copy:
        yield Log(copy, environment(backend, copy, tmp_path), streams)


def named(report: dict[str, Any]) -> set[tuple[str, int | None, int | None]]:
    return {(f["kind"], f["position"], f["version"]) for f in report["findings"]}


def test_an_untouched_log_verifies_clean_with_its_checkpoint(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log.checkpoint(monkeypatch)
    status, report = log.verify(monkeypatch, capsys)
    assert (status, report["findings"], report["events"]) == (0, [], len(ORDER))
    assert report["checkpoint"] is not None and report["checkpoints"] == 1
    done = ugc(log.env, "verify")  # the real command: a summary line and exit status 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(ORDER)} events verified in 5 logs, checkpoint checkpoint-" in done.stdout
    assert "verify orders: 7/7 events (100%)" in done.stderr  # progress: plain lines, not a terminal
    misplaced = ugc(log.env | {"UGC_AUDIT_DIR": str(tmp_path / "typo")}, "verify")  # not "no checkpoint yet"
    assert f"no checkpoint: UGC_AUDIT_DIR {tmp_path / 'typo'} does not exist" in misplaced.stdout


def test_an_edited_payload_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.set_state(log.position("A", 2), payload(2).replace(b"1000.00", b"10.00"))
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1
    [finding] = report["findings"]
    assert finding["context"] == "orders" and finding["stream"] == str(log.streams["A"])
    assert (finding["position"], finding["version"]) == (2, 2)
    assert "differs from the recomputed" in finding["what"]
    done = ugc(log.env, "verify")
    assert done.returncode == 1 and f"chain orders position 2 stream {log.streams['A']} version 2:" in done.stdout


def test_an_event_deleted_from_the_middle_of_its_stream_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.delete_event("A", 2)
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("chain", 2, 2)}
    assert "without its event" in report["findings"][0]["what"]


def test_an_event_deleted_with_its_chain_row_is_named_by_the_gap_and_the_broken_link(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.delete_event("A", 2)
    log.delete_chain_row("A", 2)
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("chain", 3, 1), ("chain", 4, 3)}
    whats = {f["position"]: f["what"] for f in report["findings"]}
    assert "stored link differs" in whats[3] and "version(s) 2 of the stream are missing" in whats[4]


def test_the_last_event_of_a_stream_deleted_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.delete_event("A", 4)
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("chain", 6, 4)}


def test_the_logs_last_event_cut_off_with_its_chain_row_is_caught_by_the_checkpoint(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.checkpoint(monkeypatch)
    log.delete_event("B", 3)
    log.delete_chain_row("B", 3)
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("checkpoint", 7, None)}
    assert "behind the head signed" in report["findings"][0]["what"]
    assert report["findings"][0]["context"] == "orders"


def test_a_checkpoint_named_by_a_clock_that_ran_fast_hides_no_later_cut(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checkpoints are ordered by what they sign, not by their names: one written an hour fast is
    named after every checkpoint of that hour, and a log cut below their heads is still caught."""
    settings, stores = Settings.from_env(log.env), EventStores(log.url, data_key=DATA_KEY)
    directory = settings.audit_dir
    try:
        fast = datetime.now(UTC) + timedelta(hours=1)
        write_checkpoint(directory, settings.audit_key, stores.chain_heads(), fast)
        stores.orders.recorder.insert_events([StoredEvent(log.streams["B"], 4, "ugc.Order.Updated", payload(4))])
    finally:
        stores.close()
    log.checkpoint(monkeypatch)  # the clock set right: named before the fast one, signing position 8
    status, report = log.verify(monkeypatch, capsys)
    assert (status, report["checkpoints"], Path(report["checkpoint"]).name) == (0, 2, newest(directory).name)
    log.sql("DELETE FROM {events} WHERE notification_id = 8", "DELETE FROM {events} WHERE rowid = 8")
    log.sql("DELETE FROM {chain} WHERE notification_id = 8", "DELETE FROM {chain} WHERE notification_id = 8")
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("checkpoint", 8, None)}
    assert "behind the head signed" in report["findings"][0]["what"]


def newest(directory: Path) -> Path:
    """The checkpoint file written last (by the file system's clock, which no test moves)."""
    return max(directory.glob("checkpoint-*.json"), key=lambda path: path.stat().st_mtime_ns)


def test_two_events_swapped_in_the_log_are_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = log.position("A", 2), log.position("A", 3)
    for old, new in ((first, -1), (second, first), (-1, second)):
        log.sql(
            "UPDATE {events} SET notification_id = %s WHERE notification_id = %s",
            "UPDATE {events} SET rowid = ? WHERE rowid = ?",
            new,
            old,
        )
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1
    assert {(f["position"], f["version"]) for f in report["findings"]} == {(2, 3), (4, 2)}
    whats = " ".join(f["what"] for f in report["findings"])
    assert "version(s) 2 of the stream are missing" in whats and "out of order" in whats


def test_two_events_payloads_swapped_are_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = log.position("A", 2), log.position("A", 3)
    log.set_state(first, payload(3))
    log.set_state(second, payload(2))
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("chain", first, 2), ("chain", second, 3)}


@pytest.mark.parametrize("later_checkpoint", [False, True])
def test_a_consistently_rewritten_chain_is_caught_only_by_the_signed_checkpoint(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], later_checkpoint: bool
) -> None:
    """An intruder who edits an event and recomputes every hash and link after it (the chain has no
    key) leaves a chain that checks; the checkpoint's signed link at the head does not. A later
    checkpoint's link differs too, as a consequence: the first signed link that differs is named."""
    log.checkpoint(monkeypatch)
    if later_checkpoint:
        log.append_later_event()
        log.checkpoint(monkeypatch)
    forged = payload(2).replace(b"1000.00", b"10.00")
    log.sql(
        "UPDATE {events} SET state = %s WHERE notification_id = 2",
        "UPDATE {events} SET state = ? WHERE rowid = 2",
        forged,
    )
    stores = EventStores(log.url, data_key=DATA_KEY)
    try:
        events = stores.recorded_range("orders", 1, 100)
    finally:
        stores.close()
    entries = [StoredEntry(e.position, e.stream, e.version, e.topic, e.state) for e in events[1:]]
    first = events[0]
    assert first.hash is not None and first.link is not None
    recorded_at = events[1].recorded_at
    assert recorded_at is not None
    rows = chain_entries("orders", entries, {(first.stream, 1): first.hash}, first.link, recorded_at)
    for row, original in zip(rows, events[1:], strict=True):
        log.sql(
            "UPDATE {chain} SET hash = %s, link = %s, recorded_at = %s WHERE notification_id = %s",
            "UPDATE {chain} SET hash = ?, link = ?, recorded_at = ? WHERE notification_id = ?",
            row.hash,
            row.link,
            *((recorded_at,) if log.url.startswith("postgresql") else (recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),)),
            original.position,
        )
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("checkpoint", 7, 3)}
    assert "differs from the one signed" in report["findings"][0]["what"]
    assert GENESIS not in {row.hash for row in rows}


def test_a_checkpoint_altered_after_signing_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.checkpoint(monkeypatch)
    [path] = (Path(log.env["UGC_VAR_DIR"]) / "audit").glob("checkpoint-*.json")
    document = json.loads(path.read_text())
    document["heads"]["orders"]["position"] = 6  # as if the log had one event less when signed
    path.write_text(json.dumps(document))
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("checkpoint", None, None)}
    assert "signature does not match UGC_AUDIT_KEY" in report["findings"][0]["what"]


def test_a_checkpoints_signature_replaced_by_non_ascii_text_is_named_and_verify_goes_on(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hmac.compare_digest` refuses a str with a non-ASCII character: such a signature once stopped
    `ugc verify` with that message, no finding named and the other checks never run."""
    log.checkpoint(monkeypatch)
    [path] = (Path(log.env["UGC_VAR_DIR"]) / "audit").glob("checkpoint-*.json")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"signature": "подпись"}, ensure_ascii=False))
    log.set_state(log.position("A", 2), payload(2).replace(b"1000.00", b"10.00"))
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("checkpoint", None, None), ("chain", 2, 2)}
    done = ugc(log.env, "verify")
    assert done.returncode == 1 and f"{path.name}: the signature does not match UGC_AUDIT_KEY" in done.stdout


def test_verify_says_how_far_the_signed_checkpoints_vouch_and_a_cut_beyond_them_goes_unseen(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events after the furthest signed head can be cut, or rewritten with the chain recomputed, without
    a trace (the chain has no key): the report says which positions no checkpoint vouches for."""
    status, report = log.verify(monkeypatch, capsys)
    assert (status, report["vouched"]["orders"]) == (0, {"head": 7, "signed": 0})
    log.checkpoint(monkeypatch)
    stores = EventStores(log.url, data_key=DATA_KEY)
    try:
        for version in (4, 5):
            stores.orders.recorder.insert_events(
                [StoredEvent(log.streams["B"], version, "ugc.Order.Updated", payload(version))]
            )
    finally:
        stores.close()
    status, report = log.verify(monkeypatch, capsys)
    assert (status, report["vouched"]["orders"], report["vouched"]["files"]) == (
        0,
        {"head": 9, "signed": 7},
        {"head": 0, "signed": 0},
    )
    done = ugc(log.env, "verify")
    assert done.returncode == 0
    unvouched = "orders: no checkpoint vouches for the last 2 events yet (positions 8-9; the furthest signed head is 7)"
    assert unvouched in done.stdout, done.stdout
    log.sql("DELETE FROM {events} WHERE notification_id = 9", "DELETE FROM {events} WHERE rowid = 9")
    log.sql("DELETE FROM {chain} WHERE notification_id = 9", "DELETE FROM {chain} WHERE notification_id = 9")
    status, report = log.verify(monkeypatch, capsys)  # undetectable: the one thing checkpoints cannot vouch for
    assert (status, report["findings"], report["vouched"]["orders"]) == (0, [], {"head": 8, "signed": 7})


def test_what_no_checkpoint_vouches_for_past_a_restores_gap_is_counted_in_events(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a restore a log's positions jump to 100,000 times the Unix time: the positions alone
    ("8-1000000000000") read as a trillion events unsigned, where there is one."""
    log.checkpoint(monkeypatch)
    floor = 10**12
    raise_floors(log.url, floor, ID_KINDS)
    log.append_later_event()  # at the floor
    done = ugc(log.env, "verify")
    assert done.returncode == 0
    unvouched = (
        f"orders: no checkpoint vouches for the last event yet (positions 8-{floor}; the furthest signed head is 7): "
        "a cut or a rewrite there would not show"
    )
    assert unvouched in done.stdout.splitlines(), done.stdout
    assert "files:" not in done.stdout  # nothing past its signed head (none): no line


# Values of another type written into a SQLite log's columns (SQLite keeps any value in any column;
# PostgreSQL's column types refuse them): table, column, position, the SQL expression written.
MISTYPED = {
    "event-stream": ("{events}", "originator_id", 3, "'not-a-uuid'"),
    "event-version": ("{events}", "originator_version", 3, "'two'"),
    "event-state-as-text": ("{events}", "state", 3, "CAST(state AS TEXT)"),
    "chain-stream": ("{chain}", "originator_id", 3, "'not-a-uuid'"),
    "chain-version": ("{chain}", "originator_version", 3, "'two'"),
    "chain-time": ("{chain}", "recorded_at", 3, "'yesterday'"),
    "chain-hash-as-text": ("{chain}", "hash", 3, "hex(hash)"),
    "last-chain-time": ("{chain}", "recorded_at", 7, "'yesterday'"),
}


@pytest.mark.parametrize("mistyped", MISTYPED.values(), ids=MISTYPED.keys())
def test_a_value_of_another_type_in_a_sqlite_log_is_named_where_it_is_and_verify_goes_on(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], mistyped: tuple[str, str, int, str]
) -> None:
    """Such a value once stopped `ugc verify` with the reader's error ("badly formed hexadecimal UUID
    string"): no log or position named, no --json report, the other checks never run."""
    if log.url.startswith("postgresql"):
        pytest.skip("PostgreSQL's column types refuse such values")
    log.checkpoint(monkeypatch)
    table, column, position, value = mistyped
    where = "rowid" if table == "{events}" else "notification_id"
    log.sql("", f"UPDATE {table} SET {column} = {value} WHERE {where} = {position}")
    log.set_state(log.position("A", 2), payload(2).replace(b"1000.00", b"10.00"))  # still named beside it
    log.delete_event("B", 2)  # and a position with neither event nor chain row, read one by one too
    log.delete_chain_row("B", 2)
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1
    assert ("chain", 2, 2) in named(report) and ("chain", 6, 4) in named(report)
    assert any(f["context"] == "orders" and f["position"] == position for f in report["findings"]), report
    done = ugc(log.env, "verify")
    assert done.returncode == 1 and "verify failed" not in done.stderr, done.stderr
    assert f"orders position {position}" in done.stdout, done.stdout


def test_an_erasure_journal_edited_or_an_erasure_undone_in_the_database_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal is signed evidence outside the database: a forged line, and a journaled person the
    database does not show erased (a restore without --replay, or a destroyed data key put back into
    the keys table, which no chain covers), are findings of `ugc verify`, not only of a replay."""
    for name, value in log.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password-1\n"))
    capsys.readouterr()
    assert cli.main(["users", "create", "olga_brand", "--email", "olga@example.com"]) == 0
    user = int(capsys.readouterr().out.split("(id ")[1].split(")")[0])
    settings = Settings.from_env(log.env)
    status, report = log.verify(monkeypatch, capsys)
    assert (status, report["findings"]) == (0, [])
    path = record_erasure(settings.audit_dir, settings.audit_key, user, "olga_brand", datetime.now(UTC))
    forged = json.loads(path.read_text()) | {"user": user + 1}
    with path.open("a") as journal:
        journal.write(json.dumps(forged) + "\n")
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and {(f["kind"], f["context"]) for f in report["findings"]} == {
        ("erasure", None),
        ("erasure", "accounts"),
    }
    whats = " ".join(f["what"] for f in report["findings"])
    assert "line 2: the signature does not match UGC_AUDIT_KEY" in whats
    assert f"user {user} (olga_brand), erased by line 1 at " in whats and "is not erased in the database" in whats
    done = ugc(log.env, "verify")
    assert done.returncode == 1 and "erasure accounts:" in done.stdout, done.stdout


def test_an_erasure_the_journal_lost_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A person erased in the database whose journal line is gone (deleted from the file, or the
    erasure run with another UGC_AUDIT_DIR) is one a restore of an older backup would bring back
    without a word, `--replay` knowing nothing of them: the database shows the erasure (their keys'
    tombstones), so verify names it. It said "0 finding(s)", the README holding that a deleted line
    "leaves no trace"."""
    for name, value in log.env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(log.env)
    users = {}
    for username in ("olga_brand", "petr_shop"):
        monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password-1\n"))
        capsys.readouterr()
        assert cli.main(["users", "create", username, "--email", f"{username}@example.com"]) == 0
        users[username] = int(capsys.readouterr().out.split("(id ")[1].split(")")[0])

    def journal(user: int, username: str, at: datetime) -> None:
        record_erasure(settings.audit_dir, settings.audit_key, user, username, at)

    stores = EventStores(log.url, data_key=DATA_KEY)
    db = Database(log.url)
    try:
        for username in users:
            AccountCommands(stores, db, SystemClock()).erase(username, operator_actor("tester"), journal)
    finally:
        db.close()
        stores.close()
    status, report = log.verify(monkeypatch, capsys)
    assert (status, report["findings"]) == (0, [])
    path = settings.audit_dir / "erasures.jsonl"
    kept = [line for line in path.read_text().splitlines(keepends=True) if '"petr_shop"' not in line]
    path.write_text("".join(kept))  # petr_shop's line deleted
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and [(f["kind"], f["context"]) for f in report["findings"]] == [("erasure", "accounts")]
    what = report["findings"][0]["what"]
    assert f"user {users['petr_shop']} (petr_shop) is erased in this database" in what, what
    assert "the erasure journal holds no line" in what and "ugc users erase petr_shop --yes" in what, what
    path.unlink()  # the whole journal gone: both are named
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and len(report["findings"]) == 2, report["findings"]
    done = ugc(log.env, "verify")
    assert done.returncode == 1 and "erasure accounts:" in done.stdout, done.stdout


def test_an_event_edited_with_its_own_hash_recomputed_is_named_at_its_row_and_where_its_stream_goes_on(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edited event's row then holds together; its link does not, and its stream's next event no
    longer chains from it. Each finding says where to look: this row, and the hash the next one extends."""
    stores = EventStores(log.url, data_key=DATA_KEY)
    try:
        first, second = stores.recorded_range("orders", 1, 2)
    finally:
        stores.close()
    assert first.hash is not None
    forged = payload(2).replace(b"1000.00", b"10.00")
    hash_ = stream_hash(
        first.hash, canonical_bytes("orders", second.stream, 2, second.topic, forged, second.recorded_at)
    )
    log.set_state(2, forged)
    log.sql(
        "UPDATE {chain} SET hash = %s WHERE notification_id = 2",
        "UPDATE {chain} SET hash = ? WHERE notification_id = 2",
        hash_,
    )
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("chain", 2, 2), ("chain", 4, 3)}
    whats = {f["position"]: f["what"] for f in report["findings"]}
    assert "this chain row's hash or link, or a chain row before it" in whats[2]
    assert "the hash of version 2 at position 2" in whats[4]


def test_a_checkpoint_overwritten_with_an_older_ones_content_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rolling the newest checkpoint back to an older one's signed content keeps a valid signature; the
    name, which its writer takes from the time it signs, then tells another time. (Deleting the newest
    file instead leaves no trace here: the copies kept elsewhere show that.)"""
    log.checkpoint(monkeypatch)
    [older] = (Path(log.env["UGC_VAR_DIR"]) / "audit").glob("checkpoint-*.json")
    log.append_later_event()
    log.checkpoint(monkeypatch)
    [newer] = set(older.parent.glob("checkpoint-*.json")) - {older}
    newer.write_text(older.read_text())
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and named(report) == {("checkpoint", None, None)}
    assert f"{newer.name} signs the time {json.loads(older.read_text())['written_at']}" in report["findings"][0]["what"]


@pytest.mark.parametrize("table", ["chain", "events"])
def test_a_dropped_table_of_a_log_is_named_not_taken_for_a_database_to_migrate(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], table: str
) -> None:
    """`ugc verify` once answered "not migrated yet: ugc migrate", and migrating would have made the
    table anew and chained the log as it stands, edits and all: the one advice an auditor must not get."""
    log.checkpoint(monkeypatch)
    log.sql(f"DROP TABLE {{{table}}} CASCADE", f"DROP TABLE {{{table}}}")
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and {(f["kind"], f["context"]) for f in report["findings"]} >= {("chain", "orders")}
    what = next(f["what"] for f in report["findings"] if f["kind"] == "chain")
    assert f"{table} table" in what and "missing: dropped; do not run ugc migrate" in what  # PostgreSQL: both
    done = ugc(log.env, "verify")
    assert done.returncode == 1 and f"chain orders: {what}" in done.stdout, done.stdout
    assert "ugc migrate)" not in done.stderr


def _copy_into_catalog(log: Log) -> None:
    """The orders log's first two events and their chain rows copied into the catalog's log."""
    if log.url.startswith("postgresql"):
        with psycopg.connect(log.url, autocommit=True) as conn:
            conn.execute("INSERT INTO catalog_events SELECT * FROM orders_events WHERE notification_id <= 2")
            conn.execute(
                "INSERT INTO catalog_events_chain SELECT * FROM orders_events_chain WHERE notification_id <= 2"
            )
        return
    main = sqlite_path(log.url)
    with closing(sqlite3.connect(main.with_name(f"{main.stem}.catalog{main.suffix}"))) as lite, lite:
        lite.execute("ATTACH ? AS orders", (str(main.with_name(f"{main.stem}.orders{main.suffix}")),))
        lite.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
            "SELECT rowid, originator_id, originator_version, topic, state FROM orders.stored_events WHERE rowid <= 2"
        )
        lite.execute(
            "INSERT INTO stored_events_chain SELECT * FROM orders.stored_events_chain WHERE notification_id <= 2"
        )


# Tamperings `ugc verify` named from the start, each pinned: what is done, and the findings
# (kind, context, position, version) it must give.
PINNED: dict[str, tuple[Callable[[Log], None], set[tuple[str, str, int, int]]]] = {
    "topic changed": (
        lambda log: log.sql(
            "UPDATE {events} SET topic = 'ugc.Order.Cancelled' WHERE notification_id = 2",
            "UPDATE {events} SET topic = 'ugc.Order.Cancelled' WHERE rowid = 2",
        ),
        {("chain", "orders", 2, 2)},
    ),
    "version changed in the log": (
        lambda log: log.sql(
            "UPDATE {events} SET originator_version = 9 WHERE notification_id = 6",
            "UPDATE {events} SET originator_version = 9 WHERE rowid = 6",
        ),
        {("chain", "orders", 6, 9)},
    ),
    "chain row deleted alone": (
        lambda log: log.delete_chain_row("A", 2),
        {("chain", "orders", 2, 2), ("chain", "orders", 3, 1)},
    ),
    "link edited": (
        lambda log: log.sql(
            "UPDATE {chain} SET link = %s WHERE notification_id = 3",
            "UPDATE {chain} SET link = ? WHERE notification_id = 3",
            bytes(32),
        ),
        {("chain", "orders", 3, 1), ("chain", "orders", 4, 3)},
    ),
    "events copied into another log": (_copy_into_catalog, {("chain", "catalog", 1, 1), ("chain", "catalog", 2, 2)}),
}


@pytest.mark.parametrize("tampering", PINNED)
def test_each_other_tampering_is_named_where_it_was_done(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tampering: str
) -> None:
    tamper, expected = PINNED[tampering]
    tamper(log)
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1
    assert {(f["kind"], f["context"], f["position"], f["version"]) for f in report["findings"]} == expected


def test_a_dropped_accounts_log_with_a_journaled_erasure_is_named_and_no_user_looked_up(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env(log.env)  # a journaled erasure: verify would look its user up in that log
    record_erasure(settings.audit_dir, settings.audit_key, 1, "olga_brand", datetime.now(UTC))
    if log.url.startswith("postgresql"):
        with psycopg.connect(log.url, autocommit=True) as conn:
            conn.execute("DROP TABLE accounts_events CASCADE")
    else:
        main = sqlite_path(log.url)
        with closing(sqlite3.connect(main.with_name(f"{main.stem}.accounts{main.suffix}"))) as lite, lite:
            lite.execute("DROP TABLE stored_events")
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and ("chain", "accounts") in {(f["kind"], f["context"]) for f in report["findings"]}


def test_data_keys_overwritten_with_garbage_are_named_in_one_line_not_the_ciphers_complaint(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The keys table is no part of the chain, but whoever writes it should not leave `ugc verify` (nor
    any command) saying only "Nonce must be between 8 and 128 bytes"."""
    log.checkpoint(monkeypatch)  # lays the data keys' canary
    if log.url.startswith("postgresql"):
        with psycopg.connect(log.url, autocommit=True) as conn:
            conn.execute("UPDATE accounts_data_keys SET wrapped = %s", (b"xx",))
    else:
        main = sqlite_path(log.url)
        with closing(sqlite3.connect(main.with_name(f"{main.stem}.accounts{main.suffix}"))) as lite, lite:
            lite.execute("UPDATE data_keys SET wrapped = ?", (b"xx",))
    done = ugc(log.env, "verify")
    # Told as a key that is not the deployment's is (exit 2): from the keys alone the two look alike.
    assert done.returncode == 2 and "Nonce" not in done.stderr, done.stderr
    assert "the data keys in this database do not open with this UGC_DATA_KEY" in done.stderr, done.stderr


NULLED = {  # not the events' stream id: it is in their primary key
    "event-state": ("{events}", "state"),
    "chain-stream": ("{chain}", "originator_id"),
    "chain-hash": ("{chain}", "hash"),
}


@pytest.mark.parametrize("nulled", NULLED.values(), ids=NULLED.keys())
def test_a_null_where_the_owner_dropped_not_null_is_named_where_it_is(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], nulled: tuple[str, str]
) -> None:
    """The tables' owner can alter them (README: "Append-only on PostgreSQL"): a NULL in a column the
    store always fills is named at its position, as a value of another type is on SQLite. (Named
    from the start: pinned.)"""
    if not log.url.startswith("postgresql"):
        pytest.skip("SQLite's NOT NULL is not dropped without rebuilding the table")
    table, column = nulled
    where = "notification_id = 3"
    log.sql(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL", "")
    log.sql(f"UPDATE {table} SET {column} = NULL WHERE {where}", "")
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1 and any(f["context"] == "orders" and f["position"] == 3 for f in report["findings"]), report


@pytest.mark.timeout(120)
def test_a_value_of_another_type_past_a_restores_gap_in_positions_is_named_and_verify_ends(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past a row that did not read, verify read the log position by position, 2,000 at a time: after
    a restore, whose positions jump (`ugc/platform/restore_floors.py`), it walked the gap for ever."""
    if log.url.startswith("postgresql"):
        pytest.skip("PostgreSQL's column types refuse such values")
    floor = 10**12
    raise_floors(log.url, floor, ID_KINDS)
    log.append_later_event()  # at the floor
    log.sql("", f"UPDATE {{events}} SET originator_id = 'not-a-uuid' WHERE rowid = {floor}")
    status, report = log.verify(monkeypatch, capsys)
    assert status == 1
    assert [(f["context"], f["position"]) for f in report["findings"]] == [("orders", floor)], report
