"""A lease holder's sessions cut with `pg_terminate_backend`, on PostgreSQL, with real processes: a
`ugc serve` (UGC_PROJECTIONS=external), two `ugc project` and a real SMTP server, while a buyer
places orders and strangers register (each registration mails a verification link).

Every backend of the process that holds the `orders` lease, and of the one that holds the
`verification_mail` lease, is terminated — the lease keeper's session, the batches' pooled sessions
(a batch caught in its transaction), the LISTEN session, the event stores' — first once (a blip:
the holder reconnects and renews in time, or its lease moves), then as a cut-off holder: its
sessions terminated and its keeper kept from renewing (the test holds its `lease_members` row
locked, so each tick fails at the keeper's lock_timeout, as when its keeper cannot reach the
database) until another process took the lease; then its sessions are terminated once more. Its
runner meanwhile goes on with fresh sessions and the tokens it remembers: its fence must refuse.

What the database saw is recorded by triggers the test adds to its own database: every committed
move of a projection's position (at commit time: a deferred trigger) with the session's
application_name and the lease row's holder and token at that moment, and every change of a lease
row (acquisitions, renewals, releases). They show:

- every committed batch and mail record was the lease holder's own (its session named for the
  holder the lease row names, `leases.BATCH_PREFIX`), and no position moved twice from one place;
- a projection's fencing token never goes back: once the lease moved, nothing of the old holder
  under its old token committed;
- a lease whose holder stopped renewing had a new holder within the bound;
- every registered address got exactly one mail, at the SMTP server;
- no order command failed (the commands' wait, UGC_READ_YOUR_WRITES_TIMEOUT, is above the bound);
- the read tables end equal to a fresh replay of the log (`projections/compare.py`).

SQLite has no sessions to terminate: PostgreSQL only.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from projections.compare import compare_read_models
from projections.registry import all_projections
from tests.backends import DATA_KEY, fresh_database
from tests.servers import start_server
from tests.test_leases import (
    Inbox,
    Traffic,
    World,
    external_projections,
    holders,
    inbox,
    mailed_once,
    pid_of,
    start_projectors,
    until_shared,
)
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.leases import BATCH_PREFIX
from ugc.platform.store import EventStores

__all__ = ["inbox"]  # the SMTP server fixture, shared with tests/test_leases.py

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# Seconds from a holder's last renewal to its successor's acquisition: the target. By design
# TTL (3 s) + a keeper's tick (0.5 s).
BOUND = 5.0
WATCHED = ("orders", "verification_mail")

AUDIT = (
    """CREATE TABLE fence_audit (
        id BIGSERIAL PRIMARY KEY, projection TEXT, application TEXT, old BIGINT, new BIGINT,
        session TEXT, holder TEXT, token BIGINT, at DOUBLE PRECISION)""",
    """CREATE FUNCTION fence_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO fence_audit (projection, application, old, new, session, holder, token, at)
        SELECT NEW.projection, NEW.application, OLD.position, NEW.position,
               current_setting('application_name'), l.holder, l.token, extract(epoch from clock_timestamp())
        FROM (SELECT 1) AS one LEFT JOIN leases AS l ON l.name = NEW.projection;
        RETURN NULL;
    END $$""",
    # Deferred: it runs as the transaction commits, when its fence (if any) has been checked.
    """CREATE CONSTRAINT TRIGGER fence_audit AFTER UPDATE OF position ON projection_tracking
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fence_audit()""",
    """CREATE TABLE lease_audit (
        id BIGSERIAL PRIMARY KEY, name TEXT, holder TEXT, token BIGINT, at DOUBLE PRECISION)""",
    """CREATE FUNCTION lease_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO lease_audit (name, holder, token, at)
        VALUES (NEW.name, NEW.holder, NEW.token, extract(epoch from clock_timestamp()));
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER lease_audit AFTER UPDATE ON leases FOR EACH ROW EXECUTE FUNCTION lease_audit()",
)


@dataclass
class Cut:
    """What one round of terminations ended: sessions by kind, and which holders' they were."""

    victims: list[str]
    ended: Counter[str]


class Terminator:
    """Ends a process's PostgreSQL sessions, found by the TCP ports its sockets are bound to."""

    def __init__(self, url: str) -> None:
        self.port = urlsplit(url).port or 5432
        self.admin = psycopg.connect(url, autocommit=True, row_factory=dict_row)

    def close(self) -> None:
        self.admin.close()

    def end_sessions_of(self, pid: int) -> Counter[str]:
        """`pg_terminate_backend` every session of process `pid` (by kind: keeper, batch, other)."""
        ports = self._client_ports(pid)
        if not ports:
            return Counter()
        rows = self.admin.execute(
            "SELECT application_name, pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
            "WHERE datname = current_database() AND client_port = ANY(%s) AND pid <> pg_backend_pid()",
            (sorted(ports),),
        ).fetchall()
        return Counter(_kind(row["application_name"]) for row in rows if row["ended"])

    def _client_ports(self, pid: int) -> set[int]:
        """The local ports of `pid`'s TCP connections to the database (from /proc: Linux)."""
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    local, remote, inode = fields[1], fields[2], fields[9]
                    if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == self.port:
                        ports.add(int(local.rsplit(":", 1)[1], 16))
        return ports


def _kind(application_name: str) -> str:
    if application_name == "ugc-lease-keeper":
        return "keeper"
    return "batch" if application_name.startswith(BATCH_PREFIX) else "other"


@pytest.fixture
def postgres(backend: str) -> str:
    if backend != "postgres":
        pytest.skip("SQLite has no sessions to terminate (pg_terminate_backend is PostgreSQL's)")
    return backend


def test_a_holder_whose_sessions_are_terminated_commits_nothing_more_and_mails_once(
    postgres: str, tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    handler, smtp_port = inbox
    with fresh_database(postgres, tmp_path) as url, ExitStack() as stack:
        env = external_projections(postgres, url, tmp_path, smtp_port)
        server = stack.enter_context(start_server(env, log_dir=tmp_path))
        db = Database(url)
        stack.callback(db.close)
        with db.transaction(write=True) as cur:
            for statement in AUDIT:
                cur.execute(statement)
        start_projectors(env, tmp_path, stack)
        until_shared(db, tmp_path)
        terminator = Terminator(url)
        stack.callback(terminator.close)

        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
        world = World(client, handler)
        _, service = world.creator_with_service()
        buyer = world.user(verified=True)
        traffic = stack.enter_context(Traffic(world, server.url, buyer, service))
        time.sleep(1.0)

        cuts = []
        # 1. A blip: every session of the holders of the watched leases, once.
        cuts.append(_cut_holders(db, terminator, WATCHED))
        _until_placed(traffic)
        # 2. The holder of `orders`, then the holder of `verification_mail`, cut off: its sessions
        # terminated, and its keeper kept from renewing until the lease moved; then terminated again.
        for name in WATCHED:
            victim = _holder_of(db, name)
            with _renewals_refused(url, victim):
                cuts.append(_cut_holders(db, terminator, (name,)))
                _until_moved(db, name, victim)
                cuts.append(Cut([victim], terminator.end_sessions_of(pid_of(victim))))
            _until_placed(traffic)
        traffic.stop()
        for cut in cuts:
            print(f"\nended {dict(cut.ended)} of {cut.victims}", end="")
        refused = sum(
            path.read_text(errors="replace").count("not committed") for path in tmp_path.glob("project-*.log")
        )
        print(f"\nbatches and mails refused by their fence: {refused}", end="")
        for path in tmp_path.glob("project-*.log"):  # a lost session is a warning line, never a traceback
            assert "Traceback" not in path.read_text(errors="replace"), path

        # Every registered address got exactly one mail.
        mailed_once(handler, list(world.registered))
        # No order command failed; the slowest answer waited for a takeover.
        statuses = Counter(status for _, status, _ in traffic.answers)
        slowest = max(taken for _, _, taken in traffic.answers)
        print(f"\norders answered {dict(statuses)}, slowest {slowest:.2f} s; {len(world.registered)} mailed once")
        assert set(statuses) == {201}, statuses
        assert set(traffic.registrations) == {201}, Counter(traffic.registrations)

        audit, lease_changes = _audit(db)
        takeovers = _takeovers(lease_changes)
        print(f"takeovers (lease, seconds after the last renewal): {[(n, round(s, 2)) for n, _, s in takeovers]}")
        assert any(name == "orders" for name, _, _ in takeovers), "the cut-off holder of orders kept its lease"
        assert all(seconds <= BOUND for _, _, seconds in takeovers), takeovers
        _assert_fenced(audit, lease_changes)

        # The read side is what the log says, each acknowledged order in it once.
        settings = Settings.from_env(env)
        stores = EventStores(url, data_key=DATA_KEY)
        stack.callback(stores.close)
        assert compare_read_models(db, stores, all_projections(settings)) == []
        with db.read() as cur:
            rows = cur.execute("SELECT id FROM orders WHERE buyer_id = %s", (buyer["id"],)).fetchall()
        assert sorted(row["id"] for row in rows) == sorted(traffic.placed)


def _cut_holders(db: Database, terminator: Terminator, names: tuple[str, ...]) -> Cut:
    """Terminate every session of the processes holding `names`."""
    victims = sorted({_holder_of(db, name) for name in names})
    return Cut(victims, sum((terminator.end_sessions_of(pid_of(victim)) for victim in victims), Counter()))


@contextmanager
def _renewals_refused(url: str, holder: str) -> Iterator[None]:
    """Keep `holder`'s keeper from renewing, as if it could not reach the database: its row of
    `lease_members` stays locked, so each of its ticks fails at the keeper's lock_timeout."""
    with psycopg.connect(url) as blocker:
        locked = blocker.execute("SELECT holder FROM lease_members WHERE holder = %s FOR UPDATE", (holder,))
        assert locked.fetchone() is not None, holder
        yield
        blocker.rollback()


def _holder_of(db: Database, name: str) -> str:
    """The live holder of lease `name`, once it has one (a lease handed over for a fair share has
    none for up to a tick)."""
    deadline = time.monotonic() + 30
    while (holder := holders(db)[name]) is None:
        assert time.monotonic() < deadline, f"nobody holds {name}"
        time.sleep(0.05)
    return holder


def _until_moved(db: Database, name: str, victim: str) -> None:
    """Wait until lease `name` has a live holder other than `victim`."""
    deadline = time.monotonic() + 30
    while holders(db)[name] in (None, victim):
        assert time.monotonic() < deadline, f"{name} still held by {victim}"
        time.sleep(0.05)


def _until_placed(traffic: Traffic, count: int = 5) -> None:
    """Wait until `count` more orders were placed: the projection of orders runs again."""
    since = time.monotonic()
    while traffic.placed_since(since) < count:
        assert time.monotonic() < since + 30, "no order placed after the sessions were cut"
        time.sleep(0.05)


def _audit(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with db.read() as cur:
        audit = cur.execute("SELECT * FROM fence_audit ORDER BY id").fetchall()
        lease_changes = cur.execute("SELECT * FROM lease_audit ORDER BY id").fetchall()
    return audit, lease_changes


def _takeovers(lease_changes: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """Each lease acquired from a holder that had stopped renewing it: (lease, new holder, seconds
    from the old holder's last renewal to the acquisition). Releases (a fair share's hand-over)
    and first acquisitions are not takeovers."""
    last: dict[str, dict[str, Any]] = {}
    found = []
    for change in lease_changes:
        before = last.get(change["name"])
        if before is not None and change["token"] > before["token"] and before["holder"] is not None:
            found.append((change["name"], change["holder"], change["at"] - before["at"]))
        last[change["name"]] = change
    return found


def _assert_fenced(audit: list[dict[str, Any]], lease_changes: list[dict[str, Any]]) -> None:
    """Every committed position move was its lease holder's own, in token order, never from the same place twice."""
    assert audit, "no position moved"
    others = [row for row in audit if row["session"] != f"{BATCH_PREFIX}{row['holder']}"[:63]]
    assert others == [], "a position moved by a session other than its lease holder's"
    moves: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in audit:
        moves[(row["projection"], row["application"])].append(row)
    for key, rows in moves.items():
        for before, after in zip(rows, rows[1:], strict=False):
            assert after["token"] >= before["token"], (key, before, after)
            assert after["old"] == before["new"], (key, before, after)
    # Once a lease moved, nothing committed under its old token.
    for change in lease_changes:
        stale = [
            row
            for row in audit
            if row["projection"] == change["name"] and row["token"] < change["token"] and row["at"] > change["at"]
        ]
        assert stale == [], (change, stale[:3])
