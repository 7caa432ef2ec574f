"""Leases and their fence, step by step (keepers ticked by hand, no threads), on SQLite and PostgreSQL:
a share balanced by weight between members, also when they run different projections; a lease in
use given up only once its batch ends; a lapsed lease taken over with a greater token; the old
holder's batch refused by the fence, committing nothing; on PostgreSQL, a holder frozen inside its
batch does not keep its successor waiting, and a holder's renewals do not wait for its own slow
batches; a mail abandoned at its last moment is not delivered; a projector given only some
projections (`ugc project --only`) runs those."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher

from commands.accounts import AccountCommands, Register
from projections.accounts import AccountsProjection
from projections.leasing import LEGACY_LEADER_LOCK, LeaseKeeper
from projections.mail import Mailer
from projections.registry import stored_users
from projections.runner import JOBS_LEASE, SIDE_EFFECT_MARGIN, ProjectionRunner
from projections.verification_mail import VerificationMailProjection
from readmodels import tracking
from readmodels.waiting import Progress
from tests.backends import DATA_KEY, fresh_database
from tests.servers import free_port
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform import leases
from ugc.platform.database import Database
from ugc.platform.dialect import Cursor
from ugc.platform.store import Accounts, EventStores
from ugc.wiring import migrate, projection_runner

TTL = 0.6


def keeper(db: Database, names: list[str], weights: dict[str, float] | None = None) -> LeaseKeeper:
    return LeaseKeeper(db, names, weights=weights, holder=f"test/{uuid.uuid4().hex[:8]}", ttl=TTL)


def test_members_split_the_leases_fairly_and_a_lapsed_holder_is_replaced(db: Database) -> None:
    prefix = uuid.uuid4().hex[:6]
    names = [f"fair_{prefix}_{n}" for n in range(5)]
    a, b = keeper(db, names), keeper(db, names)
    try:
        a.tick()
        assert sorted(a.held()) == names  # alone: all of them
        b.tick()  # two members now: a holds more than its share, b finds nothing free yet
        assert b.held() == {}
        a.tick()  # a gives up what the balance gives b: 3 and 2 of 5 equal weights
        b.tick()
        assert sorted([len(a.held()), len(b.held())]) == [2, 3] and not set(a.held()) & set(b.held())

        # a stops renewing (dead or frozen): once its leases lapse, b takes them with greater tokens.
        before = a.held()
        time.sleep(TTL + 0.1)
        b.tick()
        assert sorted(b.held()) == names
        assert all(b.held()[name] > token for name, token in before.items())
        states = leases.states(db)
        assert {states[name].holder for name in names} == {b.holder}
        # a wakes: its renewal finds every lease lost.
        a.tick()
        assert not set(a.held()) & set(before)
    finally:
        a.stop()
        b.stop()


def test_a_read_model_goes_to_the_members_of_its_newest_version_and_back_when_they_leave(db: Database) -> None:
    """A rolling deploy: the older member gives the read model up to the newer one, which by weight alone
    it would have kept (the first by name of two equally loaded members); the rest is shared as before.
    A rollback: once the newer member is gone, the older one runs the read model again."""
    prefix = uuid.uuid4().hex[:6]
    model, other = f"model_{prefix}", f"other_{prefix}"
    older, newer = (
        LeaseKeeper(db, [model, other], weights={model: 4.0}, versions={model: version}, holder=holder, ttl=TTL)
        for version, holder in ((1, f"test/a-{prefix}"), (2, f"test/b-{prefix}"))
    )
    try:
        older.tick()
        assert sorted(older.held()) == [model, other]
        newer.tick()
        older.tick()  # gives the read model up: the balance gives it to the newer code
        newer.tick()
        assert (set(older.held()), set(newer.held())) == ({other}, {model})
        newer.stop()
        older.tick()
        assert sorted(older.held()) == [model, other]
    finally:
        older.stop()
        newer.stop()


def test_a_batch_under_a_lost_lease_commits_nothing(settings: Settings, db: Database) -> None:
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        accounts = AccountCommands(stores, db, MovableClock(), hasher=PasswordHasher(time_cost=1, memory_cost=8192))
        projection = AccountsProjection()
        runner = ProjectionRunner(db, stores, [projection], Progress())
        runner.register()
        runner.catch_up()
        old, new = keeper(db, [projection.name]), keeper(db, [projection.name])
        runner.keeper = old
        try:
            _free(db, projection.name)
            old.tick()
            tokens = old.held()
            assert projection.name in tokens
            name = f"fence_{uuid.uuid4().hex[:8]}"
            accounts.register(Register(name, f"{name}@example.com", "password-1", "Имя", "Фамилия"))
            time.sleep(TTL + 0.1)
            new.tick()  # the old holder stopped renewing; the new one takes the lease over
            assert new.held()[projection.name] > tokens[projection.name]

            with db.read() as cur:
                before = tracking.position(cur, projection.name, Accounts.name)
            with pytest.raises(leases.LeaseLost):
                runner._apply(Accounts.name, [projection], tokens)
            with db.read() as cur:
                assert tracking.position(cur, projection.name, Accounts.name) == before
                assert cur.execute("SELECT COUNT(*) AS n FROM users WHERE username = %s", (name,)).fetchone() == {
                    "n": 0
                }

            # Under the new holder's token the same batch commits.
            runner.keeper = new
            assert runner._apply(Accounts.name, [projection], new.held()) >= 1
            with db.read() as cur:
                assert cur.execute("SELECT COUNT(*) AS n FROM users WHERE username = %s", (name,)).fetchone() == {
                    "n": 1
                }
        finally:
            old.stop()
            new.stop()
    finally:
        stores.close()


def test_the_share_is_balanced_by_weight_also_between_members_that_run_different_leases(db: Database) -> None:
    prefix = uuid.uuid4().hex[:6]
    heavy, light = f"heavy_{prefix}", [f"light_{prefix}_{n}" for n in range(3)]
    only = f"only_{prefix}"
    weights = {heavy: 3.0} | dict.fromkeys(light, 1.0)
    a, b = keeper(db, [heavy, *light], weights), keeper(db, [heavy, *light, only], weights)
    try:
        for member in (a, b, a, b):
            member.tick()
        held = {a.holder: set(a.held()), b.holder: set(b.held())}
        # The heavy one alone on one side, the three light ones on the other (only b runs `only`).
        assert {frozenset(names) for names in held.values()} in (
            {frozenset({heavy}), frozenset({*light, only})},
            {frozenset({heavy, only}), frozenset(light)},
        )
        assert only in held[b.holder]
    finally:
        a.stop()
        b.stop()


def test_a_lease_in_use_is_given_up_when_its_batch_ends_and_no_batch_starts_on_it_meanwhile(db: Database) -> None:
    prefix = uuid.uuid4().hex[:6]
    names = [f"busy_{prefix}_{n}" for n in range(2)]
    a, b = keeper(db, names), keeper(db, names)
    try:
        a.tick()
        b.tick()
        with a.using(names):  # a batch of a on both
            a.tick()  # one of them is b's now: it stays a's until the batch ends, but no batch starts on it
            assert len(a.held()) == 1
            b.tick()
            assert b.held() == {}
        a.tick()
        b.tick()
        assert len(a.held()) == len(b.held()) == 1 and not set(a.held()) & set(b.held())
    finally:
        a.stop()
        b.stop()


def test_a_holder_frozen_inside_its_batch_does_not_hold_up_its_successor(backend: str, db: Database) -> None:
    if backend != "postgres":
        pytest.skip("on SQLite a frozen writer holds the one write lock: every writer waits (README: Leases)")
    name = f"frozen_{uuid.uuid4().hex[:6]}"
    old, new = keeper(db, [name]), keeper(db, [name])
    try:
        old.tick()
        tokens = old.held()
        # The old holder's batch passed its fence and froze before its commit: the row stays locked.
        frozen = psycopg.connect(db.url, autocommit=True)
        frozen.execute("BEGIN")
        frozen.execute(f"SET LOCAL application_name = '{leases.BATCH_PREFIX}{old.holder}'")
        with frozen.cursor() as raw:
            leases.fence(Cursor(raw, "postgresql"), old.holder, tokens)
        time.sleep(TTL + 0.1)
        started = time.monotonic()
        new.tick()
        assert new.held().get(name) == tokens[name] + 1
        assert time.monotonic() - started < 2.0
        with pytest.raises(psycopg.OperationalError):
            frozen.execute("COMMIT")
        frozen.close()
    finally:
        old.stop()
        new.stop()


def test_leases_not_given_up_at_stop_are_one_warning_line_not_a_traceback(
    backend: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The leases table locked (or the database away) as a member stops is no bug: its leases lapse,
    as a crashed member's do. DESIGN: no tracebacks in logs for what is expected."""
    if backend != "postgres":
        pytest.skip("the keeper's own connection and its lock_timeout are PostgreSQL's")
    member = keeper(db, [f"stopping_{uuid.uuid4().hex[:6]}"])
    member.tick()
    with psycopg.connect(db.url) as locking:
        locking.execute("LOCK TABLE leases IN ACCESS EXCLUSIVE MODE")
        with caplog.at_level("WARNING", logger="projections.leasing"):
            member.stop()
    [record] = [r for r in caplog.records if "could not give the leases up" in r.getMessage()]
    assert record.exc_info is None and "lock timeout" in record.getMessage(), record.getMessage()


def test_a_holder_renews_its_leases_while_its_slow_batches_hold_them_fenced(backend: str, db: Database) -> None:
    """A batch's fence keeps others from taking the lease until it commits, never its own keeper from
    renewing it: batches slower than the keeper's lock_timeout once made a loaded server lose its
    leases to itself (renewal cancelled, lease lapsed, every batch refused, writes answered 503)."""
    if backend != "postgres":
        pytest.skip("row locks are PostgreSQL's; on SQLite a batch and a renewal take turns at the write lock")
    name = f"slow_{uuid.uuid4().hex[:6]}"
    holder = keeper(db, [name])
    try:
        holder.tick()
        tokens = holder.held()
        slow = psycopg.connect(db.url, autocommit=True)
        slow.execute("BEGIN")
        with slow.cursor() as raw:
            leases.fence(Cursor(raw, "postgresql"), holder.holder, tokens)
        expiries = []
        for _ in range(3):  # the batch stays open over several renewals, past the lease's TTL
            time.sleep(TTL / 2)
            holder.tick()
            assert holder.held() == tokens
            expiries.append(leases.states(db)[name])
        assert all(state.holder == holder.holder for state in expiries)
        # Whereas an acquisition, which moves the token, still waits for the batch to end.
        with psycopg.connect(db.url, autocommit=True, options="-c lock_timeout=200") as other:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("UPDATE leases SET token = token + 1 WHERE name = %s", (name,))
        slow.execute("COMMIT")
        slow.close()
    finally:
        holder.stop()


def test_a_sender_frozen_while_recording_its_mail_does_not_hold_up_its_successor(
    backend: str, settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail's position is moved before its fence, in the same transaction: a sender frozen between
    the two holds the position's row. Its successor ends that transaction when it takes the lease
    over, or its own mails (and the whole runner, one thread) would wait for the frozen one to wake."""
    if backend != "postgres":
        pytest.skip("on SQLite a frozen writer holds the one write lock: every writer waits (README: Leases)")
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    # Longer than a send's margin (SIDE_EFFECT_MARGIN): a sender checks it has that long left first.
    ttl = SIDE_EFFECT_MARGIN + 0.5
    old, new = (LeaseKeeper(db, ["verification_mail"], holder=f"test/{uuid.uuid4().hex[:8]}", ttl=ttl) for _ in "ab")
    frozen, wake = threading.Event(), threading.Event()
    real_fence = leases.fence

    def fence_after_a_freeze(cur: Cursor, holder: str, held: Any, *, margin: float = 0.0) -> None:
        if holder == old.holder and not margin:  # the fence of `_record`, not the check before a send
            frozen.set()
            wake.wait(10)
        real_fence(cur, holder, held, margin=margin)

    monkeypatch.setattr(leases, "fence", fence_after_a_freeze)
    try:
        accounts = AccountCommands(stores, db, MovableClock(), hasher=PasswordHasher(time_cost=1, memory_cost=8192))

        def runner(holder: LeaseKeeper) -> tuple[ProjectionRunner, VerificationMailProjection]:
            mailer = Mailer(smtp_url=None, outbox_dir=tmp_path / holder.holder.replace("/", "_"), sender="n@ugc.local")
            projection = VerificationMailProjection(
                mailer, stored_users(stores), secret_key="k" * 32, public_url="http://ugc.test"
            )
            running = ProjectionRunner(db, stores, [projection], Progress())
            running.register()
            running.keeper = holder
            return running, projection

        (old_runner, old_mail), (new_runner, new_mail) = runner(old), runner(new)
        _free(db, "verification_mail")
        with db.transaction(write=True) as cur:  # only this test's mail: the log's older ones count as sent
            done = tracking.position(cur, "verification_mail", Accounts.name)
            tracking.advance(cur, Accounts.name, ["verification_mail"], done, _last_position(stores))
        name = f"frozen_{uuid.uuid4().hex[:8]}"
        accounts.register(Register(name, f"{name}@example.com", "password-1", "Имя", "Фамилия"))
        old.tick()
        tokens = old.held()
        sending = threading.Thread(target=_ignoring_errors, args=(old_runner._apply, Accounts.name, [old_mail], tokens))
        sending.start()
        assert frozen.wait(10)
        time.sleep(ttl + 0.1)
        new.tick()
        assert new.held()["verification_mail"] > tokens["verification_mail"]
        started = time.monotonic()
        assert new_runner._apply(Accounts.name, [new_mail], new.held()) >= 1
        assert time.monotonic() - started < 2.0
        assert [path.name for path in (tmp_path / new.holder.replace("/", "_")).iterdir()]
        wake.set()
        sending.join(10)
    finally:
        wake.set()
        old.stop()
        new.stop()
        stores.close()


def _last_position(stores: EventStores) -> int:
    return stores[Accounts.name].recorder.max_notification_id() or 0


def _ignoring_errors(call: Any, *args: Any) -> None:
    """Run a frozen holder's call: woken after its successor ended its transaction, it fails."""
    try:
        call(*args)
    except Exception:
        pass


def _free(db: Database, name: str) -> None:
    """Give `name` up, whoever holds it (an earlier test's keeper on the shared database)."""
    with db.transaction(write=True) as cur:
        leases.ensure(cur, [name])
        cur.execute(f"UPDATE leases SET holder = NULL, expires_at = {leases.NOW[db.dialect]} WHERE name = %s", (name,))


class _Inbox:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        return "250 OK"


def test_a_mail_whose_sender_lost_its_lease_at_the_last_moment_is_not_delivered(tmp_path: Path) -> None:
    """The fence is asked before the end of the SMTP DATA: refused there, the server delivers nothing."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        mailer = Mailer(smtp_url=f"smtp://127.0.0.1:{controller.port}", outbox_dir=tmp_path, sender="noreply@ugc.local")

        def lost() -> None:
            raise leases.LeaseLost("test/frozen", ["verification_mail"])

        with pytest.raises(leases.LeaseLost):
            mailer.send(to="a@example.com", subject="Тема", body="Первая\n.\nстрока", message_key="k1", go_ahead=lost)
        mailer.send(to="a@example.com", subject="Тема", body="Вторая\n.\nстрока", message_key="k2")
        deadline = time.monotonic() + 5
        while not inbox.received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert len(inbox.received) == 1 and b"k2@ugc.local" in inbox.received[0]
    finally:
        controller.stop()

    # Without SMTP the .eml file appears only when the fence holds.
    outbox = Mailer(smtp_url=None, outbox_dir=tmp_path / "outbox", sender="noreply@ugc.local")
    with pytest.raises(leases.LeaseLost):
        outbox.send(to="a@example.com", subject="Тема", body="текст", message_key="k3", go_ahead=lost)
    assert not (tmp_path / "outbox" / "k3.eml").exists()


def test_a_projector_runs_only_the_projections_it_is_given(settings: Settings, db: Database) -> None:
    """`ugc project --only`: those projections and their leases, the jobs only if `scheduler` is named."""
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    try:
        with projection_runner(settings, db, stores, Progress(), only=["orders", "notifications"]) as runner:
            assert sorted(p.name for p in runner.projections) == ["notifications", "orders"]
            assert sorted(runner.lease_names()) == ["notifications", "orders"]
        with projection_runner(settings, db, stores, Progress(), only=["accounts", JOBS_LEASE]) as runner:
            assert sorted(runner.lease_names()) == ["accounts", JOBS_LEASE]
        with pytest.raises(ValueError, match="no projection named nope; known: accounts"):
            with projection_runner(settings, db, stores, Progress(), only=["nope"]):
                pass
    finally:
        stores.close()


def test_members_of_a_database_older_than_their_leases_columns_get_them_at_migration(db: Database) -> None:
    with db.transaction(write=True) as cur:
        cur.execute("DELETE FROM lease_members")
        cur.execute("ALTER TABLE lease_members DROP COLUMN leases")
        cur.execute("ALTER TABLE lease_members DROP COLUMN versions")
    migrate(db)
    name = f"older_{uuid.uuid4().hex[:6]}"
    a = LeaseKeeper(db, [name], versions={name: 2}, holder=f"test/{uuid.uuid4().hex[:8]}", ttl=TTL)
    try:
        a.tick()
        assert len(a.held()) == 1
    finally:
        a.stop()


def test_no_lease_while_a_runner_of_a_version_before_leases_leads_and_none_leads_after(
    backend: str, tmp_path: Path
) -> None:
    """A rolling deploy from a version before leases: its runner, elected by an exclusive lock, and
    this version's would apply the same events to the same tables. A keeper takes no lease while one
    leads, but is a live member all the same, running none (the throttle counts its process's
    sign-ins in flight: api/throttle.py), as is a keeper of no lease, which claims nothing against
    the older leader; once a keeper with leases ticked, an older process that starts (or whose
    leader died) stands by."""
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        migrate(db)
        names = ["legacy_probe"]
        try:
            with db.exclusive_lock(LEGACY_LEADER_LOCK, wait=False) as older_leads:  # how they elected theirs
                assert older_leads
                waiting, api_only = keeper(db, names), keeper(db, [])
                waiting.tick()
                api_only.tick()
                assert waiting.held() == {}
                with db.read() as cur:
                    live = cur.execute(
                        f"SELECT holder, leases FROM lease_members WHERE holder IN ({leases.live_members(db.dialect)})"
                    ).fetchall()
                assert sorted((row["holder"], row["leases"]) for row in live) == sorted(
                    [(waiting.holder, "{}"), (api_only.holder, "{}")]
                )
            with db.exclusive_lock(LEGACY_LEADER_LOCK, wait=False) as older_leads:
                assert older_leads  # the keeper of no lease claimed nothing
            api_only.stop()
            waiting.tick()  # the older one stopped
            assert sorted(waiting.held()) == names
            with db.exclusive_lock(LEGACY_LEADER_LOCK, wait=False) as older_leads:
                assert not older_leads
            waiting.stop()
            with db.exclusive_lock(LEGACY_LEADER_LOCK, wait=False) as older_leads:
                assert older_leads
        finally:
            db.close()
