"""The mailer against real SMTP servers (aiosmtpd in this process): how long it waits for the final
reply, and what it sends (internationalised addresses too), over SMTP and into `.eml` files; TLS
with a verified certificate (a self-signed one, with its own CA file), STARTTLS before AUTH."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from projections.mail import MailDeferred, Mailer, MailRefused
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


@contextmanager
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
    with serve(SlowToAnswer(), enable_SMTPUTF8=False) as served:
        yield served


@pytest.fixture
def utf8_inbox() -> Iterator[tuple[SlowToAnswer, int]]:
    """A server that offers SMTPUTF8."""
    with serve(SlowToAnswer(), enable_SMTPUTF8=True) as served:
        yield served


def test_the_final_reply_is_awaited_longer_than_the_commands_and_the_mail_sent_once(
    inbox: tuple[SlowToAnswer, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stores the message, then answers after longer than a command may take: one mail."""
    handler, port = inbox
    handler.delay = 1.5
    mailer = Mailer(smtp_url=f"smtp://127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test", command_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="projections.mail"):
        mailer.send(to="a@example.com", subject="Тема", body="текст", message_key="slow")
    # Its 250 was heard: no warning (a retry) was logged. The SMTP server's own INFO lines can reach
    # caplog too, wherever an earlier test on this worker let the root logger take INFO.
    assert len(handler.received) == 1 and not [r for r in caplog.records if r.levelno >= logging.WARNING]


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
    # The mailer's own lines: others' INFO (the SMTP server's) can reach caplog too (see above).
    assert [r.getMessage() for r in caplog.records if r.name == "projections.mail"] == [
        "mail silent to *@example.com: no reply to its final dot (Connection unexpectedly closed: timed out); "
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
    with pytest.raises(
        MailRefused, match="mail no-utf8 to \\*@example.com: its local part is not ASCII, .* does not offer SMTPUTF8"
    ):
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


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1, which is its own CA."""

    cert: Path
    key: Path

    def server(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(directory / "cert.pem", directory / "key.pem")


@dataclass
class Logins:
    """An aiosmtpd authenticator that takes one user and keeps who logged in, over TLS or not."""

    seen: list[tuple[str, bool]] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.seen.append((data.login.decode(), session.ssl is not None))
        return AuthResult(success=data.login == b"robot" and data.password == b"s3cret")


def test_smtps_verifies_the_server_certificate(certificate: Certificate, tmp_path: Path) -> None:
    with serve(SlowToAnswer(), ssl_context=certificate.server()) as (handler, port):
        url = f"smtps://127.0.0.1:{port}"
        with pytest.raises(MailDeferred, match="CERTIFICATE_VERIFY_FAILED"):  # not signed by a CA the system knows
            Mailer(smtp_url=url, outbox_dir=tmp_path, sender="n@ugc.test").send(
                to="a@example.com", subject="Тема", body="текст", message_key="unverified"
            )
        assert handler.received == []
        Mailer(smtp_url=url, outbox_dir=tmp_path, sender="n@ugc.test", tls=certificate.client()).send(
            to="a@example.com", subject="Тема", body="текст", message_key="verified"
        )
        assert len(handler.received) == 1


def test_smtp_with_credentials_starts_tls_before_it_logs_in(certificate: Certificate, tmp_path: Path) -> None:
    logins = Logins()
    options = {"tls_context": certificate.server(), "require_starttls": True, "auth_require_tls": True}
    with serve(SlowToAnswer(), authenticator=logins, **options) as (handler, port):
        Mailer(
            smtp_url=f"smtp://robot:s3cret@127.0.0.1:{port}",
            outbox_dir=tmp_path,
            sender="n@ugc.test",
            tls=certificate.client(),
        ).send(to="a@example.com", subject="Тема", body="текст", message_key="starttls")
        assert logins.seen == [("robot", True)] and len(handler.received) == 1


def test_credentials_are_not_sent_to_a_server_without_starttls(tmp_path: Path) -> None:
    logins = Logins()
    with serve(SlowToAnswer(), authenticator=logins, auth_require_tls=False) as (handler, port):
        mailer = Mailer(smtp_url=f"smtp://robot:s3cret@127.0.0.1:{port}", outbox_dir=tmp_path, sender="n@ugc.test")
        with pytest.raises(MailDeferred, match="does not offer STARTTLS"):
            mailer.send(to="a@example.com", subject="Тема", body="текст", message_key="clear")
        assert logins.seen == [] and handler.received == []


def test_a_mail_is_dated_and_its_id_is_of_the_sender_domain(inbox: tuple[SlowToAnswer, int], tmp_path: Path) -> None:
    handler, port = inbox
    for smtp_url in (f"smtp://127.0.0.1:{port}", None):
        Mailer(smtp_url=smtp_url, outbox_dir=tmp_path, sender="robot@market.example.com").send(
            to="a@example.com", subject="Тема", body="текст", message_key="verify-7"
        )
    for content in (handler.received[0], (tmp_path / "verify-7.eml").read_bytes()):
        mail = message_from_bytes(content, policy=default)
        sent_at = parsedate_to_datetime(mail["Date"])
        assert abs((datetime.datetime.now(datetime.UTC) - sent_at).total_seconds()) < 60
        assert mail["Message-ID"] == "<verify-7@market.example.com>"
