"""Outgoing mail: SMTP when `UGC_SMTP_URL` is set, otherwise `.eml` files in the outbox folder.

A mail is given up to its point of no return — everything but the end of an SMTP DATA (the line
with one dot, before which the server delivers nothing), or the rename of a written `.eml` — and
`go_ahead` is called right there: the runner records the mail as sent, in a transaction that checks
its lease (projections/runner.py). A sender that lost its lease meanwhile (frozen, then woken after
a standby took over and sent the mail itself) is refused there, and the mail is dropped, not sent
twice.

A 4xx reply to the recipient (greylisting, a full mailbox, a limit on its domain) is that mail's
trouble alone: it is postponed (`MailPostponed`), set aside and tried again on its own, backing off,
while the mails behind it go (an address greylisted for half an hour held every registration's mail
behind it for that long). A server that cannot take any mail now — unreachable, closed, silent past
its timeout, 421, or 4xx to the sender or the data (busy) — defers it (`MailDeferred`): the runner
tries it again, backing off, for as long as that lasts, every mail waiting in order. So does a
refusal of the session itself (STARTTLS, AUTH, the sender): the configuration's fault, not the
mail's. Only a 5xx reply to the recipient or to the message refuses it (`MailRefused`): parked after
its attempts.

Each reply is awaited COMMAND_TIMEOUT, but the one to the final dot FINAL_REPLY_TIMEOUT, 10 minutes
as RFC 5321 §4.5.3.2.6 asks: a server may store the message before it answers, and a client that
gave up on a slow answer and sent again delivered the mail twice (5 times, answered after 12 s,
with the 10 s it waited). Past the dot, a reply that never comes (the connection lost, or 10 minutes
of silence) leaves the mail's fate unknown: it is counted as sent, logged, not sent again — at most
once, as a sender refused at its point of no return.

An address goes out with its domain in ASCII (IDNA: `x@пример.рф` as `x@xn--e1afmkfd.xn--p1ai`),
which every server takes. One whose local part is not ASCII (`аня@пример.рф`, which registration
accepts, as e-mail validation does) needs SMTPUTF8 (RFC 6531): a server that does not offer it
refuses the mail for good, and the `.eml` file of such a mail is an RFC 6532 message (UTF-8 headers).

No full address goes into an error or a log line: a refusal is parked (`parked_events.error`) and
logged, and an erasure cannot reach either. A mail is named by its message key and its recipient's
domain (`mail verify-<token id> to *@example.com`: which provider refuses is what an operator needs),
and the address is masked in the server's reply text, which often quotes it.

`smtps://` verifies the server's certificate and name; `smtp://` upgrades with STARTTLS (verified
alike) whenever the server offers it, and must when the URL carries credentials: no password goes
in clear, and servers that take AUTH only over TLS get it.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from email.utils import formatdate, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

import idna

from projections.base import SideEffectDeferred, SideEffectPostponed, SideEffectRefused

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0  # seconds to connect, and for each reply before the final dot
FINAL_REPLY_TIMEOUT = 600.0  # seconds for the reply to the final dot (RFC 5321 §4.5.3.2.6)
SERVICE_CLOSING = 421  # a reply to any command: the server is closing the session, for every mail


class MailDeferred(SideEffectDeferred):
    """The server could not take the mail now; it may later."""


class MailPostponed(MailDeferred, SideEffectPostponed):
    """The server could not take the mail's recipient now (a 4xx reply to RCPT); it takes others."""


class MailRefused(SideEffectRefused):
    """The server refused the mail for good (a 5xx reply to its recipient or its content)."""


@dataclass(frozen=True)
class Recipient:
    address: str  # as it goes out: its domain in ASCII
    international: bool  # its local part is not ASCII: only a server that offers SMTPUTF8 takes it
    named: str  # the mail in errors and logs: its key and the recipient's domain, never the address
    given: str = ""  # the address as it was given, when its domain was not ASCII

    def masked(self, text: str) -> str:
        """`text` (a server's reply, an error) with the address masked wherever it is quoted."""
        for address in {self.address, self.given} - {""}:
            text = re.sub(re.escape(address), "*@" + address.rpartition("@")[2], text, flags=re.IGNORECASE)
        return text


def recipient(address: str, message_key: str) -> Recipient:
    """`address` as it can be sent. Registration validated it already: only its domain's form changes
    (IDNA 2008, UTS #46), and nothing is refused that a server might deliver (a `.local` domain)."""
    local, _, domain = address.rpartition("@")
    named = f"mail {message_key} to *@{domain}"
    try:
        ascii_domain = domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise MailRefused(f"{named}: its domain has no ASCII form ({error})") from None
    sent_as = f"{local}@{ascii_domain}"
    return Recipient(
        sent_as, international=not local.isascii(), named=named, given="" if sent_as == address else address
    )


class Mailer:
    def __init__(
        self,
        *,
        smtp_url: str | None,
        outbox_dir: Path,
        sender: str,
        command_timeout: float = COMMAND_TIMEOUT,
        final_reply_timeout: float = FINAL_REPLY_TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls` verifies the server's certificate: by default against the system's CAs, or the bundle
        SSL_CERT_FILE names."""
        self.smtp_url = smtp_url
        self.outbox_dir = outbox_dir
        self.sender = sender
        self.command_timeout = command_timeout
        self.final_reply_timeout = final_reply_timeout
        self.tls = tls or ssl.create_default_context()

    def send(
        self, *, to: str, subject: str, body: str, message_key: str, go_ahead: Callable[[], None] = lambda: None
    ) -> None:
        """Send one mail; `message_key` names it, so sending it again replaces, not duplicates, a file.
        `go_ahead` raises to abandon it at the last moment."""
        to_whom = recipient(to, message_key)
        message = EmailMessage(policy=default.clone(utf8=True) if to_whom.international else default)
        message["From"] = self.sender
        message["To"] = to_whom.address
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = self._message_id(message_key)
        if self.smtp_url:
            message.set_content(body)
            self._send_smtp(message, to_whom, go_ahead)
        else:
            # 8bit keeps the link readable for a person who opens the file.
            message.set_content(body, cte="8bit")
            self._write_eml(message, message_key, go_ahead)

    def _message_id(self, message_key: str) -> str:
        """`<key@the sender's domain>`: one mail sent again keeps its id, so a receiver can tell the copy
        (`make_msgid` would draw a new one each time)."""
        domain = recipient(parseaddr(self.sender)[1], message_key).address.rpartition("@")[2]
        return f"<{message_key}@{domain or 'ugc.local'}>"

    def _send_smtp(self, message: EmailMessage, to: Recipient, go_ahead: Callable[[], None]) -> None:
        try:
            self._deliver(message, to, go_ahead)
        except (MailRefused, MailDeferred):
            raise
        except smtplib.SMTPResponseException as error:
            raise MailDeferred(f"{to.named}: {_reply(error.smtp_code, error.smtp_error, to)}") from error
        except (OSError, smtplib.SMTPException) as error:
            raise MailDeferred(f"{to.named}: {type(error).__name__}: {to.masked(str(error))}") from error

    def _deliver(self, message: EmailMessage, to: Recipient, go_ahead: Callable[[], None]) -> None:
        url = urlsplit(self.smtp_url or "")
        host = url.hostname or "127.0.0.1"
        smtp = (
            smtplib.SMTP_SSL(host, url.port or 465, timeout=self.command_timeout, context=self.tls)
            if url.scheme == "smtps"
            else smtplib.SMTP(host, url.port or 25, timeout=self.command_timeout)
        )
        with smtp:
            if url.scheme != "smtps":
                _start_tls(smtp, self.tls, required=url.username is not None)
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            _send_data(smtp, self.sender, to, bytes(message), go_ahead, self.final_reply_timeout)

    def _write_eml(self, message: EmailMessage, message_key: str, go_ahead: Callable[[], None]) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        final = self.outbox_dir / f"{message_key}.eml"
        partial = final.with_suffix(".eml.part")
        partial.write_bytes(bytes(message))
        go_ahead()
        partial.replace(final)


def _start_tls(smtp: smtplib.SMTP, context: ssl.SSLContext, *, required: bool) -> None:
    """STARTTLS when the server offers it; with credentials to send, it must (none go in clear)."""
    smtp.ehlo()
    if smtp.has_extn("starttls"):
        smtp.starttls(context=context)
        smtp.ehlo()
    elif required:
        raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS: its credentials are not sent in clear")


def _send_data(
    smtp: smtplib.SMTP,
    sender: str,
    to: Recipient,
    content: bytes,
    go_ahead: Callable[[], None],
    final_reply_timeout: float,
) -> None:
    """`SMTP.sendmail` with `go_ahead` asked before the final dot. When it raises, the connection is
    closed mid-DATA: the server discards the message (RFC 5321 §4.1.1.4: the dot completes it)."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender, _mail_options(smtp, to))
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = smtp.rcpt(to.address)
    if code not in (250, 251):
        _refuse(code, reply, to, recipient=code != SERVICE_CLOSING)
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        _refuse(code, reply, to)
    # CRLF line ends, and a dot doubled at a line's start (RFC 5321 §4.5.2), as `sendmail` does.
    data = re.sub(rb"(?m)^\.", b"..", re.sub(rb"\r\n|\n|\r", b"\r\n", content))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    smtp.send(data)
    try:
        go_ahead()
    except BaseException:
        smtp.close()
        raise
    smtp.send(b".\r\n")
    if smtp.sock is not None:
        smtp.sock.settimeout(final_reply_timeout)
    try:
        code, reply = smtp.getreply()
    except smtplib.SMTPServerDisconnected as error:
        log.warning("%s: no reply to its final dot (%s); counted as sent, not sent again", to.named, error)
        return
    if code != 250:
        _refuse(code, reply, to)


def _mail_options(smtp: smtplib.SMTP, to: Recipient) -> list[str]:
    """MAIL FROM's options: SMTPUTF8 for a local part that is not ASCII, if the server offers it."""
    if not to.international:
        return []
    if not smtp.has_extn("smtputf8"):
        raise MailRefused(f"{to.named}: its local part is not ASCII, and the server does not offer SMTPUTF8")
    return ["SMTPUTF8", *(["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else [])]


def _refuse(code: int, reply: bytes, to: Recipient, *, recipient: bool = False) -> None:
    """Raise for a reply that refused the recipient or the message: for good if 5xx; for now otherwise,
    postponing this mail alone if the reply was about its `recipient`. A 4xx to the message (the DATA
    command or its final dot: the server busy, out of room) has it, and the mails behind it, wait."""
    refusal = MailRefused if 500 <= code < 600 else MailPostponed if recipient else MailDeferred
    raise refusal(f"{to.named}: {_reply(code, reply, to)}")


def _reply(code: int, text: bytes | str, to: Recipient) -> str:
    """A server's reply, as errors and logs show it: a refusal often quotes the address (`<a@b>: ...`)."""
    return f"{code} {to.masked(text.decode(errors='replace') if isinstance(text, bytes) else text)}"
