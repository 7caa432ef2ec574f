"""Verification mail as the runner sends it, against real SMTP servers (aiosmtpd, or a listener
that never answers), on SQLite and PostgreSQL: a mail server that hangs holds up no read model; one
that is down, or busy (4xx to the sender), has the mail wait and sent once it is back, never parked;
a recipient greylisted (4xx to RCPT) has its mail set aside and tried again alone while the others
go, and parked once it has waited too long; a 5xx refusal parks it, logged in one line an attempt;
two retries of a parked mail send it once."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from eventsourcing.utils import get_topic

from commands.accounts import AccountCommands, Register
from projections import operations
from projections.accounts import AccountsProjection
from projections.mail import MailDeferred, Mailer
from projections.registry import stored_users
from projections.runner import ProjectionRunner
from projections.verification_mail import VerificationMailProjection
from readmodels import parked, tracking
from readmodels.tracking import ProjectionState
from readmodels.waiting import Progress
from tests.backends import DATA_KEY, environment
from tests.conftest import issued_tokens
from tests.servers import free_port, run_ugc
from ugc.accounts import VerificationToken, verification_token
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import Accounts, EventStores
from ugc.wiring import migrate

SECRET_KEY = "k" * 32


@dataclass
class World:
    db: Database
    stores: EventStores
    accounts: AccountCommands
    progress: Progress


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    db = Database(settings.database_url)
    migrate(db)
    stores = EventStores(settings.database_url, data_key=DATA_KEY)
    accounts = AccountCommands(stores, db, MovableClock(), hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    try:
        yield World(db, stores, accounts, Progress())
    finally:
        stores.close()
        db.close()


def mail_runner(world: World, mailer: Mailer, **options: Any) -> ProjectionRunner:
    """A runner of the accounts read model and the verification mail, which sends only the mails
    issued from now on (the module's database keeps the earlier tests' as sent, none parked)."""
    mail = verification_mail(world, mailer)
    runner = ProjectionRunner(world.db, world.stores, [AccountsProjection(), mail], world.progress, **options)
    runner.register()
    head = world.stores[Accounts.name].recorder.max_notification_id() or 0
    with world.db.transaction(write=True) as cur:
        tracking.advance(cur, Accounts.name, [mail.name], tracking.position(cur, mail.name, Accounts.name), head)
        cur.execute("DELETE FROM parked_events WHERE projection = %s", (mail.name,))
    return runner


def verification_mail(world: World, mailer: Mailer) -> VerificationMailProjection:
    return VerificationMailProjection(
        mailer, stored_users(world.stores), secret_key=SECRET_KEY, public_url="http://ugc.test"
    )


def register(world: World, domain: str = "example.com") -> tuple[int, str]:
    name = f"mail_{uuid.uuid4().hex[:8]}"
    registered = world.accounts.register(Register(name, f"{name}@{domain}", "password-1", "Имя", "Фамилия"))
    world.progress.wait(world.db, registered.positions, 2.0)
    return registered.user_id, f"{name}@{domain}"


def test_a_mail_server_that_never_answers_holds_up_no_command(world: World, tmp_path: Path) -> None:
    """Each registration issues a mail the server never takes; the commands behind answer in their time."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody ever greets
        with running(mail_runner(world, mailer_to(silent.getsockname()[1], tmp_path))):
            for _ in range(3):
                started = time.monotonic()
                user_id, _ = register(world)
                world.accounts.resend_verification(user_id)
                world.progress.wait(world.db, world.accounts.update_profile(user_id, {"bio": "жду"}), 2.0)
                assert time.monotonic() - started < 1.5


@dataclass
class Inbox:
    """An aiosmtpd handler that answers `refusal` to the first `refusals` recipients, greylists the
    recipients of the `greylisted` domains, and is too busy for the first `busy` senders and the first
    `busy_data` messages; then takes every mail."""

    refusals: int = 0
    refusal: str = "451 4.7.1 Greylisted, try again later"
    greylisted: set[str] = field(default_factory=set)
    busy: int = 0
    busy_data: int = 0
    delay: float = 0.0  # before the answer to each message
    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.busy > 0:
            self.busy -= 1
            return "451 4.3.2 System not accepting network messages"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.rpartition("@")[2] in self.greylisted:
            return f"450 4.7.1 <{address}>: Recipient address rejected: Greylisted, try again later"
        if self.refusals > 0:
            self.refusals -= 1
            return self.refusal.format(address=address)  # `{address}`: quoted, as Postfix does
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.busy_data > 0:
            self.busy_data -= 1
            return "451 4.3.0 Mail server temporarily rejected message"
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        await asyncio.sleep(self.delay)
        return "250 OK"

    def to(self, address: str) -> list[bytes]:
        return [content for recipients, content in self.received if address in recipients]


@contextmanager
def smtp_server(inbox: Inbox, port: int | None = None) -> Iterator[Controller]:
    controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port(), ready_timeout=10)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@contextmanager
def running(runner: ProjectionRunner) -> Iterator[ProjectionRunner]:
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def mailer_to(port: int, outbox: Path) -> Mailer:
    return Mailer(smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=outbox, sender="n@ugc.test")


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def mail_state(world: World) -> ProjectionState:
    [state] = [s for s in operations.status(world.db, world.stores) if s.projection == "verification_mail"]
    return state


def test_mail_the_server_defers_waits_for_it_and_is_never_parked(world: World, tmp_path: Path) -> None:
    """Too busy four times, more than the attempts before a poison event is parked: sent the fifth."""
    inbox = Inbox(busy=4)
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), max_attempts=2)),
    ):
        _, address = register(world)
        eventually(lambda: bool(inbox.to(address)))
        time.sleep(0.3)
        assert len(inbox.to(address)) == 1 and inbox.busy == 0
        assert mail_state(world).parked == 0 and mail_state(world).postponed == 0


def test_a_message_the_server_is_too_busy_to_take_waits_and_the_mails_behind_it_too(
    world: World, tmp_path: Path
) -> None:
    """A 4xx to the message is the server's trouble, not the recipient's (README): the mail is never
    postponed on its own, and those behind it wait and go after it, in log order."""
    inbox = Inbox(busy_data=4)
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), max_attempts=2)),
    ):
        _, first = register(world)
        _, second = register(world)
        eventually(lambda: bool(inbox.to(second)))
        assert [recipients for recipients, _ in inbox.received] == [[first], [second]]
        assert inbox.busy_data == 0 and mail_state(world).parked == 0 and mail_state(world).postponed == 0


def test_a_greylisted_recipient_holds_up_no_other_mail_and_has_its_own_once_let_in(
    world: World, tmp_path: Path
) -> None:
    inbox = Inbox(greylisted={"grey.example"})
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), postponed_backoff=(0.2, 0.4))),
    ):
        _, grey = register(world, domain="grey.example")
        eventually(lambda: mail_state(world).postponed == 1)
        others = [register(world)[1] for _ in range(3)]
        eventually(lambda: all(inbox.to(other) for other in others))
        assert inbox.to(grey) == []
        state = mail_state(world)
        assert state.lag_events == 0 and state.parked == 0 and state.postponed == 1
        with world.db.read() as cur:
            [row] = cur.execute(
                "SELECT error, attempts FROM parked_events WHERE projection = 'verification_mail'"
            ).fetchall()
        assert row["error"].startswith("mail verify-") and "to *@grey.example: 450 4.7.1" in row["error"]
        assert grey.partition("@")[0] not in row["error"]
        eventually(lambda: _attempts(world) >= 3)  # tried again on its own, backing off
        inbox.greylisted.clear()
        eventually(lambda: bool(inbox.to(grey)))
        eventually(lambda: mail_state(world).postponed == 0)
        time.sleep(0.5)
        assert len(inbox.to(grey)) == 1 and mail_state(world).parked == 0
        assert all(len(inbox.to(other)) == 1 for other in others)


def test_the_postponed_mail_of_a_person_erased_meanwhile_is_never_sent(world: World, tmp_path: Path) -> None:
    inbox = Inbox(greylisted={"grey.example"})
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), postponed_backoff=(0.2, 0.2))),
    ):
        _, grey = register(world, domain="grey.example")
        eventually(lambda: mail_state(world).postponed == 1)
        world.accounts.erase(grey.partition("@")[0], "operator")
        inbox.greylisted.clear()
        eventually(lambda: mail_state(world).postponed == 0)
        time.sleep(0.5)
        assert inbox.received == [] and mail_state(world).parked == 0


def test_the_waiting_mails_of_a_link_renewed_or_used_meanwhile_are_never_sent(world: World, tmp_path: Path) -> None:
    """While the server is down, one user asks for the link twice more, another verifies with theirs
    (as a support person may give it out from the log): once it is back, only the newest link goes."""
    port = free_port()  # nobody listens yet: connection refused
    with running(mail_runner(world, mailer_to(port, tmp_path))):
        renewing, renewing_address = register(world)
        verifying, verifying_address = register(world)
        for _ in range(2):
            world.accounts.resend_verification(renewing)
        [token] = [e for e in issued_tokens(world.stores[Accounts.name]) if e.user_number == verifying]
        world.accounts.verify_email(verification_token(token.key, SECRET_KEY), [SECRET_KEY])
        newest = [e for e in issued_tokens(world.stores[Accounts.name]) if e.user_number == renewing][-1]
        inbox = Inbox()
        with smtp_server(inbox, port):
            eventually(lambda: mail_state(world).lag_events == 0, timeout=15)
    [mail] = inbox.to(renewing_address)
    assert verification_token(newest.key, SECRET_KEY) in message_from_bytes(mail, policy=default).get_content()
    assert inbox.to(verifying_address) == [] and mail_state(world).parked == 0


def test_a_mail_postponed_for_too_long_is_parked_for_an_operator(world: World, tmp_path: Path) -> None:
    inbox = Inbox(greylisted={"grey.example"})
    with (
        smtp_server(inbox) as controller,
        running(
            mail_runner(
                world,
                mailer_to(controller.port, tmp_path),
                postponed_backoff=(0.2, 0.2),
                postponed_for=timedelta(seconds=1),
            )
        ),
    ):
        _, grey = register(world, domain="grey.example")
        eventually(lambda: mail_state(world).parked == 1)
        assert mail_state(world).postponed == 0 and _attempts(world) >= 2
        inbox.greylisted.clear()
        time.sleep(1.5)  # a parked mail waits for an operator
        assert inbox.to(grey) == []
        projection = verification_mail(world, mailer_to(controller.port, tmp_path))
        retried = operations.retry(world.db, world.stores, projection)
        assert len(retried.applied) == 1 and len(inbox.to(grey)) == 1


def _attempts(world: World) -> int:
    with world.db.read() as cur:
        row = cur.execute("SELECT attempts FROM parked_events WHERE projection = 'verification_mail'").fetchone()
    return int(row["attempts"]) if row else 0


def test_mail_waits_while_its_server_is_down_its_lag_shown_and_goes_once_it_is_up(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nobody listens yet: connection refused
    with running(mail_runner(world, mailer_to(port, tmp_path), max_attempts=2)):
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            _, address = register(world)
            time.sleep(1.5)  # ~6 attempts
            lagging = mail_state(world)
            assert lagging.lag_events >= 1 and lagging.lag_seconds > 1.0 and lagging.parked == 0
            inbox = Inbox()
            with smtp_server(inbox, port):
                eventually(lambda: bool(inbox.to(address)), timeout=15)
        assert mail_state(world).lag_events == 0
        deferred = [r for r in caplog.records if r.name == "projections.runner" and "deferred" in r.getMessage()]
        assert len(deferred) >= 3 and all(
            r.exc_info is None and "Connection refused" in r.getMessage() for r in deferred
        )


def test_mail_the_server_refuses_for_good_is_parked_after_its_attempts_one_line_each(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox(refusals=2, refusal="550 5.1.1 No such mailbox")
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), max_attempts=2)),
    ):
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            _, address = register(world)
            eventually(lambda: mail_state(world).parked == 1)
        _, other = register(world)  # the mails behind it go on
        eventually(lambda: bool(inbox.to(other)))
        assert inbox.to(address) == []
        with world.db.read() as cur:
            [row] = parked.waiting(cur, "verification_mail")
        assert row["error"].startswith("MailRefused: mail verify-") and row["error"].endswith(
            " to *@example.com: 550 5.1.1 No such mailbox"
        )
        # The runner's lines: the lease's INFO naming the projection can reach caplog too, wherever an
        # earlier test on this worker let the root logger take INFO.
        lines = [r for r in caplog.records if r.name == "projections.runner" and "verification_mail" in r.getMessage()]
        assert len(lines) == 2 and all(r.exc_info is None for r in lines)


def test_the_error_of_a_parked_mail_is_shown_by_projections_status(
    world: World, settings: Settings, backend: str, tmp_path: Path
) -> None:
    """README: a mail refused for good is parked, "its error in `ugc projections status`"."""
    inbox = Inbox(refusals=2, refusal="550 5.1.1 No such mailbox")
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), max_attempts=2)),
    ):
        register(world)
        eventually(lambda: mail_state(world).parked == 1)
    shown = run_ugc(environment(backend, settings.database_url, settings.var_dir), "projections", "status")
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("parked verification_mail ")]
    assert " (2 attempts): MailRefused: mail verify-" in line
    assert line.endswith(" to *@example.com: 550 5.1.1 No such mailbox"), line


def test_a_refused_address_is_neither_parked_nor_logged_only_its_mail_key_and_domain(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal is parked and logged, where an erasure cannot reach: the address must never be there,
    not even as the server's reply quotes it. Deferred first (4xx), then refused for good (5xx)."""
    inbox = Inbox(refusals=3, refusal="550 5.1.1 <{address}>: Recipient address rejected: User unknown")
    deferring = Inbox(refusals=1, refusal="451 4.7.1 <{address}>: Greylisted")
    with (
        smtp_server(inbox) as controller,
        running(mail_runner(world, mailer_to(controller.port, tmp_path), max_attempts=2)),
        caplog.at_level(logging.DEBUG),
    ):
        user_id, address = register(world, domain="Secret-Mail.example")
        eventually(lambda: mail_state(world).parked == 1)
        with world.db.read() as cur:
            [row] = parked.waiting(cur, "verification_mail")
    with smtp_server(deferring) as controller, caplog.at_level(logging.DEBUG):
        with pytest.raises(MailDeferred) as deferred:
            mailer_to(controller.port, tmp_path).send(
                to=address.upper(), subject="Тема", body="текст", message_key=f"verify-{user_id}"
            )
    local = address.partition("@")[0]
    assert row["error"].startswith("MailRefused: mail verify-"), row["error"]
    assert row["error"].endswith(
        " to *@Secret-Mail.example: 550 5.1.1 <*@Secret-Mail.example>: Recipient address rejected: User unknown"
    ), row["error"]
    assert str(deferred.value) == (
        f"mail verify-{user_id} to *@SECRET-MAIL.EXAMPLE: 451 4.7.1 <*@SECRET-MAIL.EXAMPLE>: Greylisted"
    )
    ours = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("projections", "commands", "ugc")]
    assert any("verification_mail" in line and "*@Secret-Mail.example" in line for line in ours), ours
    for text in [row["error"], *ours]:
        assert local.lower() not in text.lower(), text


def test_two_retries_of_a_parked_mail_at_once_send_it_once(world: World, tmp_path: Path) -> None:
    inbox = Inbox(delay=0.5)  # a mail takes a while: the two retries overlap
    with smtp_server(inbox) as controller:
        mailer = mailer_to(controller.port, tmp_path)
        mail_runner(world, mailer)  # never started: the mail is parked by hand
        name = f"retry_{uuid.uuid4().hex[:8]}"
        address = f"{name}@example.com"
        world.accounts.register(Register(name, address, "password-1", "Имя", "Фамилия"))
        position = world.stores[Accounts.name].recorder.max_notification_id() or 0
        with world.db.transaction(write=True) as cur:
            topic = get_topic(VerificationToken.Issued)
            parked.park(
                cur, "verification_mail", Accounts.name, position, topic, "MailDeferred: down", 5, datetime.now(UTC)
            )
        projection = verification_mail(world, mailer)
        results: list[operations.Retried] = []

        def retry() -> None:
            results.append(operations.retry(world.db, world.stores, projection))

        retries = [threading.Thread(target=retry) for _ in range(2)]
        for thread in retries:
            thread.start()
        for thread in retries:
            thread.join(10)
        assert len(inbox.to(address)) == 1
        assert sorted(len(result.applied) for result in results) == [0, 1]
        assert mail_state(world).parked == 0
