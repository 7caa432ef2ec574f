"""The mailer against real SMTP servers (aiosmtpd in this process): how long it waits for the final
reply, and what it sends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from projections.mail import Mailer
from tests.servers import free_port


@dataclass
class SlowToAnswer:
    """Stores each message, then answers its final dot `delay` seconds later."""

    delay: float = 0.0
    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        await asyncio.sleep(self.delay)
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[SlowToAnswer, int]]:
    handler = SlowToAnswer()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def test_the_final_reply_is_awaited_longer_than_the_commands_and_the_mail_sent_once(
    inbox: tuple[SlowToAnswer, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stores the message, then answers after longer than a command may take: one mail."""
    handler, port = inbox
    handler.delay = 1.5
    mailer = Mailer(smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test", command_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="projections.mail"):
        mailer.send(to="a@example.com", subject="Тема", body="текст", message_key="slow")
    assert len(handler.received) == 1 and not caplog.records  # its 250 was heard


def test_a_mail_whose_final_reply_never_comes_is_counted_as_sent_not_sent_again(
    inbox: tuple[SlowToAnswer, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the final dot the server may have stored it: sending again could deliver it twice."""
    handler, port = inbox
    handler.delay = 5.0
    mailer = Mailer(
        smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test", final_reply_timeout=0.5
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="projections.mail"):
        mailer.send(to="a@example.com", subject="Тема", body="текст", message_key="silent")
    assert time.monotonic() - started < 2.0
    assert len(handler.received) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "mail to a@example.com: no reply to its final dot (Connection unexpectedly closed: timed out); "
        "counted as sent, not sent again"
    ]
