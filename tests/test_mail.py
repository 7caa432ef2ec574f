"""The mailer against real SMTP servers (aiosmtpd in this process): how long it waits for the final
reply, and what it sends (internationalised addresses too), over SMTP and into `.eml` files."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from projections.mail import Mailer, MailRefused
from tests.servers import free_port


@dataclass
class SlowToAnswer:
    """Stores each message, then answers its final dot `delay` seconds later."""

    delay: float = 0.0
    received: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], list[str]]] = field(default_factory=list)  # from, to, MAIL options

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), list(envelope.mail_options)))
        await asyncio.sleep(self.delay)
        return "250 OK"


def serve(handler: SlowToAnswer, **options: Any) -> Iterator[tuple[SlowToAnswer, int]]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10, **options)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Iterator[tuple[SlowToAnswer, int]]:
    """A server that does not offer SMTPUTF8 (aiosmtpd's Controller does by default)."""
    yield from serve(SlowToAnswer(), enable_SMTPUTF8=False)


@pytest.fixture
def utf8_inbox() -> Iterator[tuple[SlowToAnswer, int]]:
    """A server that offers SMTPUTF8."""
    yield from serve(SlowToAnswer(), enable_SMTPUTF8=True)


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


def test_an_idn_domain_goes_out_in_ascii_to_any_server(inbox: tuple[SlowToAnswer, int], tmp_path: Path) -> None:
    handler, port = inbox
    Mailer(smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test").send(
        to="x@пример.рф", subject="Тема", body="текст", message_key="idn"
    )
    assert handler.envelopes == [("n@ugc.test", ["x@xn--e1afmkfd.xn--p1ai"], [])]
    assert message_from_bytes(handler.received[0], policy=default)["To"] == "x@xn--e1afmkfd.xn--p1ai"


def test_a_local_part_not_in_ascii_goes_out_with_smtputf8(utf8_inbox: tuple[SlowToAnswer, int], tmp_path: Path) -> None:
    handler, port = utf8_inbox
    Mailer(smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test").send(
        to="аня@пример.рф", subject="Тема", body="текст", message_key="utf8"
    )
    [(_, recipients, options)] = handler.envelopes
    assert recipients == ["аня@xn--e1afmkfd.xn--p1ai"] and "SMTPUTF8" in options
    assert "To: аня@xn--e1afmkfd.xn--p1ai\r\n".encode() in handler.received[0]  # RFC 6532: UTF-8 as is


def test_a_local_part_not_in_ascii_is_refused_for_good_by_a_server_without_smtputf8(
    inbox: tuple[SlowToAnswer, int], tmp_path: Path
) -> None:
    handler, port = inbox
    mailer = Mailer(smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test")
    with pytest.raises(MailRefused, match="ÄÖ@example.com: its local part is not ASCII, .* does not offer SMTPUTF8"):
        mailer.send(to="ÄÖ@example.com", subject="Тема", body="текст", message_key="no-utf8")
    assert handler.received == []


@pytest.mark.parametrize(
    ("to", "header"),
    [("x@пример.рф", b"To: x@xn--e1afmkfd.xn--p1ai\n"), ("аня@пример.рф", "To: аня@xn--e1afmkfd.xn--p1ai\n".encode())],
)
def test_the_eml_file_carries_a_valid_to_header(tmp_path: Path, to: str, header: bytes) -> None:
    Mailer(smtp_url=None, outbox_dir=tmp_path, sender="n@ugc.test").send(
        to=to, subject="Тема", body="текст", message_key="eml"
    )
    written = (tmp_path / "eml.eml").read_bytes()
    assert header in written and b"=?utf-8?" not in written.split(b"\nSubject:")[0]
