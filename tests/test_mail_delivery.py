"""Verification mail as the runner sends it, against real SMTP servers (aiosmtpd, or a listener
that never answers), on SQLite and PostgreSQL: a mail server that hangs holds up no read model."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from commands.accounts import AccountCommands, Register
from projections.accounts import AccountsProjection
from projections.mail import Mailer
from projections.runner import ProjectionRunner
from projections.verification_mail import VerificationMailProjection
from readmodels import tracking
from readmodels.waiting import Progress
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform.database import Database
from ugc.platform.store import Accounts, EventStores
from ugc.wiring import migrate


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
    stores = EventStores(settings.database_url)
    accounts = AccountCommands(stores, db, MovableClock(), hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    try:
        yield World(db, stores, accounts, Progress())
    finally:
        stores.close()
        db.close()


def mail_runner(world: World, mailer: Mailer, **options: int) -> ProjectionRunner:
    """A runner of the accounts read model and the verification mail, which sends only the mails
    issued from now on (the module's database keeps the earlier tests' as sent)."""
    mail = VerificationMailProjection(mailer, secret_key="k" * 32, public_url="http://ugc.test")
    runner = ProjectionRunner(world.db, world.stores, [AccountsProjection(), mail], world.progress, **options)
    runner.register()
    head = world.stores[Accounts.name].recorder.max_notification_id() or 0
    with world.db.transaction(write=True) as cur:
        tracking.advance(cur, Accounts.name, [mail.name], tracking.position(cur, mail.name, Accounts.name), head)
    return runner


def register(world: World) -> tuple[int, str]:
    name = f"mail_{uuid.uuid4().hex[:8]}"
    registered = world.accounts.register(Register(name, f"{name}@example.com", "password-1", "Имя", "Фамилия"))
    world.progress.wait(world.db, registered.positions, 2.0)
    return registered.user_id, f"{name}@example.com"


def test_a_mail_server_that_never_answers_holds_up_no_command(world: World, tmp_path: Path) -> None:
    """Each registration issues a mail the server never takes; the commands behind answer in their time."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody ever greets
        mailer = Mailer(
            smtp_url=f"smtp://127.0.0.1:{silent.getsockname()[1]}", outbox_dir=tmp_path, sender="n@ugc.test"
        )
        runner = mail_runner(world, mailer)
        runner.start()
        try:
            for _ in range(3):
                started = time.monotonic()
                user_id, _ = register(world)
                world.accounts.resend_verification(user_id)
                world.progress.wait(world.db, world.accounts.update_profile(user_id, {"bio": "жду"}), 2.0)
                assert time.monotonic() - started < 1.5
        finally:
            runner.stop()
